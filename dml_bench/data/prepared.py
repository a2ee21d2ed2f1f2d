"""Pre-resized image caches (``dml-bench prepare``): decode and resize each photo once.

Why: the paper's input pipeline (docs/protocol.md, "Paper training set-up": resize to 256, random 227
crop, flip) decodes a full JPEG and resizes it for every image of every step. On CUB or Cars a
training step of a GPU trunk is faster than decoding its batch, so the decoder, not the model,
sets the pace of a run. A prepared cache holds, for every image of a split, the uint8 RGB pixels
that the transform's first step, ``v2.Resize(resize)``, makes from the decoded file: the same
function, applied once. When a run reads the cache, that first step meets an image of its target
size and returns it untouched (torchvision does so for tensors), so every crop, flip and tensor a
run sees is, bit for bit, the one it would see without the cache (tests check it). A cache is
therefore an execution detail: it does not change a run's identity or its results.

Layout, under ``<data root>/prepared/<dataset>-<split>-r<resize>-<key>/``, where ``key`` hashes
the resize and the resolved path of every listed image (another listing is another cache)::

    manifest.json   what the cache holds; written last, so its presence means "complete"
    pixels.u8       every image's H x W x 3 uint8 pixels, back to back, in listing order
    index.npz       per image: byte offset, height, width; size and mtime_ns of its source file
    shapes.i32      while building: (height, width) of each image written so far
    progress.json   while building: images and bytes written and synced (the resume point)

Building is resumable: pixels and shapes are appended and synced every ``SYNC_EVERY`` images
before ``progress.json`` records the count, so after a kill or Ctrl-C the next ``prepare``
truncates both files to the recorded point and goes on from there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from dml_bench.data.base import DataRequest
from dml_bench.data.images import ImageListDataset, load_rgb
from dml_bench.errors import UserError
from dml_bench.store.write import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

PREPARED_FOLDER = "prepared"
FORMAT_VERSION = 1
SYNC_EVERY = 256  # images between syncs of the resume point
MANIFEST, PIXELS, INDEX = "manifest.json", "pixels.u8", "index.npz"
SHAPES, PROGRESS, LOCK = "shapes.i32", "progress.json", "lock"
MAX_LISTED_PATHS = 3


# ----------------------------------------------------------------------------- where a cache lives
def cache_key(paths: Sequence[Path], resize: int) -> str:
    """A hash of the resize and of every listed image's resolved path, in listing order."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION} resize={resize}\n".encode())
    for path in paths:
        digest.update(os.fsencode(Path(path).resolve()))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def cache_folder(
    data_root: Path, dataset: str, split: str, resize: int, paths: Sequence[Path]
) -> Path:
    name = f"{dataset}-{split}-r{resize}-{cache_key(paths, resize)}"
    return Path(data_root).expanduser() / PREPARED_FOLDER / name


def source_stats(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Size and modification time (ns) of each source file: what a stale cache is told by."""
    sizes = np.empty(len(paths), dtype=np.int64)
    mtimes = np.empty(len(paths), dtype=np.int64)
    for i, path in enumerate(paths):
        stat = os.stat(path)
        sizes[i], mtimes[i] = stat.st_size, stat.st_mtime_ns
    return sizes, mtimes


def resized_pixels(path: Path, resize: int) -> np.ndarray:
    """The H x W x 3 uint8 pixels that ``v2.Resize(resize)`` makes of the decoded image: the
    same call as the first step of :func:`~dml_bench.data.transforms.photo_transforms`."""
    image = v2.Resize(resize)(load_rgb(path))
    return np.array(image, dtype=np.uint8)


# ----------------------------------------------------------------------------- reading a cache
class PreparedImages:
    """The pixels of one prepared split, read through a memory map opened lazily in each process.

    ``image(i)`` is a ``tv_tensors.Image`` (3 x H x W uint8) that the photo transforms accept in
    place of the decoded PIL image. The memory map is not pickled: DataLoader workers (forked or
    spawned) open their own.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        with np.load(self.folder / INDEX, allow_pickle=False) as index:
            self.offsets = index["offsets"]
            self.heights = index["heights"]
            self.widths = index["widths"]
            self.sizes = index["sizes"]
            self.mtimes = index["mtimes"]
        self._pixels: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pixels": None}

    def pixels(self) -> np.memmap:
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")
        return self._pixels

    def image(self, index: int) -> tv_tensors.Image:
        start, h, w = int(self.offsets[index]), int(self.heights[index]), int(self.widths[index])
        hwc = np.array(self.pixels()[start : start + h * w * 3]).reshape(h, w, 3)
        return tv_tensors.Image(torch.from_numpy(hwc).permute(2, 0, 1).contiguous())

    def expected_bytes(self) -> int:
        if not len(self):
            return 0
        last = len(self) - 1
        return int(self.offsets[last] + self.heights[last] * self.widths[last] * 3)

    def stale_sources(self, paths: Sequence[Path]) -> list[Path]:
        """The source images whose size or mtime changed since the cache was prepared."""
        sizes, mtimes = source_stats(paths)
        changed = np.flatnonzero((sizes != self.sizes) | (mtimes != self.mtimes))
        return [Path(paths[int(i)]) for i in changed]


def find_prepared(
    data_root: Path, dataset: str, split: str, resize: int, paths: Sequence[Path]
) -> PreparedImages | None:
    """The complete, fresh cache of these images at this resize, or ``None`` if there is none.

    A cache that is there but does not match its images (damaged, or sources changed since) is an
    error, not a silent fallback: the user learns that the slow path would be taken and why.
    """
    folder = cache_folder(data_root, dataset, split, resize, paths)
    if not (folder / MANIFEST).is_file():
        return None
    rebuild = (
        f"delete {folder} and run `dml-bench prepare --dataset {dataset} --resize {resize}` "
        "again, or pass --no-prepared to read the original files"
    )
    prepared = PreparedImages(folder)
    size = (folder / PIXELS).stat().st_size if (folder / PIXELS).is_file() else -1
    if len(prepared) != len(paths) or size != prepared.expected_bytes():
        raise UserError(
            f"The prepared cache {folder} is damaged: it indexes {len(prepared)} images in "
            f"{prepared.expected_bytes()} bytes, its {PIXELS} holds {max(size, 0)} bytes and "
            f"{dataset}/{split} lists {len(paths)} images. To fix it, {rebuild}."
        )
    stale = prepared.stale_sources(paths)
    if stale:
        shown = ", ".join(map(str, stale[:MAX_LISTED_PATHS]))
        raise UserError(
            f"The prepared cache {folder} of {dataset} is stale: {len(stale)} of {len(paths)} "
            f"source images changed since it was prepared (e.g. {shown}). To fix it, {rebuild}."
        )
    return prepared


def list_prepared(data_root: Path, dataset: str) -> list[dict[str, Any]]:
    """The complete caches of ``dataset`` under ``data_root`` (their manifests, plus ``folder``
    and ``split``), for ``dml-bench datasets``; whether they still match their images is checked
    when a run reads them."""
    caches = []
    for manifest in sorted((Path(data_root).expanduser() / PREPARED_FOLDER).glob("*/" + MANIFEST)):
        try:
            record = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if record.get("dataset") != dataset:
            continue
        split = manifest.parent.name[len(dataset) + 1 :].split("-")[0]
        caches.append({**record, "folder": manifest.parent, "split": split})
    return caches


# ----------------------------------------------------------------------------- building a cache
@dataclass(frozen=True)
class PrepareResult:
    folder: Path
    images: int
    bytes: int
    resumed_from: int
    already_complete: bool


class _Resized(torch.utils.data.Dataset):
    """Decode and resize image ``i`` (in DataLoader workers, so decoding runs in parallel)."""

    def __init__(self, paths: Sequence[Path], resize: int) -> None:
        self.paths, self.resize = list(paths), resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return resized_pixels(self.paths[index], self.resize)


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """One builder per cache: a second ``prepare`` of the same cache is told to wait."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"Another dml-bench process is preparing {folder} right now. Wait for it to "
                "finish (its cache is then used by every run), or stop it first."
            ) from None
        yield


def _resume_point(folder: Path) -> tuple[int, int]:
    """(images, bytes) written and synced by an earlier, interrupted build; (0, 0) if none."""
    try:
        progress = json.loads((folder / PROGRESS).read_text())
        return int(progress["images"]), int(progress["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0


def build_cache(
    paths: Sequence[Path],
    folder: Path,
    resize: int,
    *,
    dataset: str,
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> PrepareResult:
    """Write the cache of ``paths`` at ``resize`` into ``folder``, resuming an interrupted build.

    ``progress(n)`` is called after each image (``n`` images done, counting earlier sessions).
    A complete cache is left as it is.
    """
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        manifest = json.loads((folder / MANIFEST).read_text())
        return PrepareResult(folder, manifest["images"], manifest["bytes"], 0, True)
    with _build_lock(folder):
        done, offset = _resume_point(folder)
        sizes, mtimes = source_stats(paths)
        with open(folder / PIXELS, "a+b") as pixels, open(folder / SHAPES, "a+b") as shapes:
            pixels.truncate(offset)
            shapes.truncate(done * 8)
            pixels.seek(offset)
            shapes.seek(done * 8)
            if done:
                logger.info("%s: resuming at image %d of %d", folder.name, done, len(paths))
            loader = torch.utils.data.DataLoader(
                _Resized(paths[done:], resize),
                batch_size=None,
                num_workers=num_workers,
                prefetch_factor=8 if num_workers else None,
            )
            written = done
            for array in loader:
                data = np.ascontiguousarray(array.numpy() if torch.is_tensor(array) else array)
                pixels.write(data.tobytes())
                shapes.write(np.asarray(data.shape[:2], dtype=np.int32).tobytes())
                offset += data.nbytes
                written += 1
                if written % SYNC_EVERY == 0:
                    _sync_progress(folder, pixels, shapes, written, offset)
                if progress is not None:
                    progress(written)
            _sync_progress(folder, pixels, shapes, written, offset)
        _finish(folder, paths, resize, dataset, sizes, mtimes, offset)
    return PrepareResult(folder, len(paths), offset, done, False)


def _sync_progress(folder: Path, pixels: Any, shapes: Any, images: int, nbytes: int) -> None:
    for handle in (pixels, shapes):
        handle.flush()
        os.fsync(handle.fileno())
    atomic_write_json(folder / PROGRESS, {"images": images, "bytes": nbytes})


def _finish(
    folder: Path,
    paths: Sequence[Path],
    resize: int,
    dataset: str,
    sizes: np.ndarray,
    mtimes: np.ndarray,
    nbytes: int,
) -> None:
    """Index, then manifest (its presence marks the cache complete), then drop build files."""
    shapes = np.fromfile(folder / SHAPES, dtype=np.int32).reshape(-1, 2)
    if len(shapes) != len(paths):
        raise RuntimeError(f"{folder}: {len(shapes)} shapes written for {len(paths)} images")
    heights, widths = shapes[:, 0].astype(np.int64), shapes[:, 1].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(heights * widths * 3)[:-1]]).astype(np.int64)
    buffer = _npz_bytes(offsets=offsets, heights=heights, widths=widths, sizes=sizes, mtimes=mtimes)
    atomic_write_bytes(folder / INDEX, buffer)
    atomic_write_json(
        folder / MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "dataset": dataset,
            "resize": resize,
            "images": len(paths),
            "bytes": nbytes,
            "key": cache_key(paths, resize),
        },
    )
    for name in (SHAPES, PROGRESS):
        (folder / name).unlink(missing_ok=True)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


# ----------------------------------------------------------------------------- runs and the CLI
@dataclass
class PreparedCaches:
    """The :data:`~dml_bench.data.base.PreparedLookup` of one split that a run hands in through
    its ``DataRequest``: looks for the complete, fresh cache of the files the dataset lists, and
    remembers the ones it served (``served``, for the run's record).

    Only the image-list datasets (CUB, Cars, SOP, folder, CSV) ask: their transform is
    :func:`~dml_bench.data.transforms.photo_transforms`, whose first step the cache has already
    applied.
    """

    data_root: Path
    dataset: str
    split: str
    resize: int
    served: list[Path] = field(default_factory=list)

    def __call__(self, paths: Sequence[Path]) -> PreparedImages | None:
        prepared = find_prepared(self.data_root, self.dataset, self.split, self.resize, paths)
        if prepared is not None and prepared.folder not in self.served:
            self.served.append(prepared.folder)
        return prepared


def prepare_splits(
    spec: Any,
    config: Any,
    data_root: Path,
    resize: int,
    *,
    download: bool = False,
    num_workers: int = 0,
    progress: Callable[..., Any] | None = None,
) -> list[PrepareResult]:
    """Build (or finish) the caches of the train and the test split of a photo dataset."""
    if spec.input_kind != "photo":
        raise UserError(
            f"{spec.name} is not read from image files (its items are generated tensors), so "
            "there is nothing to prepare. `dml-bench prepare` is for photo datasets: cub200, "
            "cars196, sop, folder:PATH and csv:FILE."
        )
    if resize <= 0:
        raise UserError(f"--resize must be a positive number of pixels, got {resize}.")
    results = []
    for split in ("train", "test"):
        dataset = spec.build(DataRequest(Path(data_root), split, None, download), config)
        if not isinstance(dataset, ImageListDataset):
            raise UserError(
                f"{spec.name} builds {type(dataset).__name__} datasets, which do not list their "
                "image files, so they cannot be prepared. Run without a prepared cache."
            )
        folder = cache_folder(data_root, spec.name, split, resize, dataset.paths)
        bar = (
            progress(total=len(dataset), desc=f"{spec.name}/{split}", unit="img")
            if progress
            else None
        )
        try:
            results.append(
                build_cache(
                    dataset.paths,
                    folder,
                    resize,
                    dataset=spec.name,
                    num_workers=num_workers,
                    progress=_bar_to(bar),
                )
            )
        finally:
            if bar is not None:
                bar.close()
    return results


def _bar_to(bar: Any) -> Callable[[int], None] | None:
    """A ``progress(n)`` callback that moves a tqdm bar to ``n`` (resumed builds start ahead)."""
    if bar is None:
        return None
    return lambda n: bar.update(n - bar.n)
