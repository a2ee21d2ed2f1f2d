"""Helpers shared by the datasets that read image files (CUB, Cars, SOP, folder, CSV).

They keep the failure modes loud and uniform: a missing annotation file, a malformed line, a
listed image that is not on disk or an image PIL cannot decode each raise a
:class:`~dml_bench.errors.UserError` that names the path, never a silent skip (a skipped image
would quietly change the benchmark's test set).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dml_bench.data.base import DataRequest, PixelSource, PreparedLookup, Split
from dml_bench.data.transforms import photo_transforms
from dml_bench.errors import ConfigError, DatasetNotFoundError

logger = logging.getLogger(__name__)

MAX_LISTED_PATHS = 5
MIN_CLASSES_PER_SPLIT = 2


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders ``"2" < "10"`` and ``"class2" < "class10"``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def check_split(split: str) -> Split:
    if split not in ("train", "test"):
        raise ConfigError(f"Unknown split {split!r}; use 'train' or 'test'.")
    return split  # type: ignore[return-value]


def resolve_transform(request: DataRequest) -> Callable[[Any], Any]:
    """``request.transform``, or the paper's transform for the split (train: random crop, flip)."""
    if request.transform is not None:
        return request.transform
    return photo_transforms(train=request.split == "train")


def how_to_get(url: str, root: Path) -> str:
    return (
        f"Download it with --download (download=True from Python), or fetch {url} yourself and "
        f"extract it into {root}; or point --data-root (or $DML_BENCH_DATA_ROOT) at the folder "
        "that already holds it."
    )


def require_dataset_folder(
    root: Path, folder: str, marker: str, dataset: str, expected: str, how: str
) -> Path:
    """``root / folder``, or an error that says which level of the layout is wrong.

    ``marker`` is a file the folder must hold; when it sits directly under ``root`` instead, the
    user pointed ``root`` at the dataset folder itself and the message says so.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{dataset} not found: the data root {root} does not exist. Expected {expected} "
            f"under it. {how}"
        )
    base = root / folder
    if not base.is_dir():
        hint = ""
        if (root / marker).exists():
            hint = (
                f" {root} itself looks like the {folder} folder: pass its parent "
                f"{root.parent} as the data root."
            )
        raise DatasetNotFoundError(
            f"{dataset} not found: expected the folder {base} holding {expected}.{hint} {how}"
        )
    return base


def require_file(path: Path, what: str, hint: str) -> None:
    """Raise :class:`DatasetNotFoundError` naming ``path`` when it is not a file."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{what} not found: expected the file {path}. {hint}")


def read_table(path: Path, n_columns: int, dataset: str, header: bool = False) -> list[list[str]]:
    """Whitespace-separated text table with at least ``n_columns`` per non-empty line.

    The official annotation files (CUB's ``images.txt``, SOP's ``Ebay_*.txt``) use this format.
    A short line raises an error naming the file and line number (a truncated download).
    """
    rows: list[list[str]] = []
    with path.open(encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < n_columns:
            raise DatasetNotFoundError(
                f"{dataset}: line {number} of {path} has {len(fields)} fields, expected "
                f"{n_columns}. The file looks truncated or corrupt; download the dataset again."
            )
        rows.append(fields)
    if not rows:
        raise DatasetNotFoundError(
            f"{dataset}: {path} holds no entries. The file looks truncated or corrupt; "
            "download the dataset again."
        )
    return rows


def parse_int(value: str, path: Path, dataset: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetNotFoundError(
            f"{dataset}: expected an integer in {path}, found {value!r}. The file looks corrupt; "
            "download the dataset again."
        ) from None


def check_files_exist(paths: Sequence[Path], dataset: str) -> None:
    """One cheap ``stat`` per listed image, so a partial extraction fails now, not mid-epoch."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:MAX_LISTED_PATHS])
        more = (
            f" and {len(missing) - MAX_LISTED_PATHS} more"
            if len(missing) > MAX_LISTED_PATHS
            else ""
        )
        raise DatasetNotFoundError(
            f"{dataset}: {len(missing)} of {len(paths)} listed images are missing: {shown}{more}. "
            "The extraction looks incomplete; extract the archive again (or download it again)."
        )


def load_rgb(path: Path) -> Image.Image:
    """Open ``path`` as an RGB PIL image; an unreadable file raises an error naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetNotFoundError(
            f"Cannot read the image {path}: {exc}. The file is corrupt or not an image; replace "
            "it (e.g. extract the dataset again) or remove it from the dataset's listing."
        ) from None


def square_thumbnail(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop: uint8 ``size x size x 3``."""
    image = image.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8).copy()


def seeded_class_split(
    classes: Sequence[str], seed: int, test_fraction: float
) -> tuple[list[str], list[str]]:
    """Class-disjoint split: a seeded shuffle of the classes, the first part goes to test.

    Used where the source defines no zero-shot split (Hershey, image folders, CSV files without a
    ``split`` column). Each part keeps the input order of ``classes``.
    """
    order = np.random.default_rng(seed).permutation(len(classes))
    n_test = int(round(len(classes) * test_fraction))
    n_test = min(max(n_test, 1), len(classes) - 1)
    test_set = set(order[:n_test].tolist())
    train = [c for i, c in enumerate(classes) if i not in test_set]
    test = [c for i, c in enumerate(classes) if i in test_set]
    if set(train) & set(test) or not train or not test:
        raise AssertionError("class split is not disjoint or has an empty side")
    return train, test


def check_test_fraction(dataset: str, test_fraction: float) -> None:
    if not (0.0 < test_fraction < 1.0):
        raise ConfigError(
            f"{dataset}: test_fraction must be strictly between 0 and 1 (the share of classes held "
            f"out for testing), got {test_fraction}."
        )


def split_custom_classes(
    classes: Sequence[str], seed: int, test_fraction: float, source: str
) -> tuple[list[str], list[str]]:
    """Seeded class split of a user's dataset; each side needs two classes to be evaluated."""
    need = 2 * MIN_CLASSES_PER_SPLIT
    if len(classes) < need:
        raise DatasetNotFoundError(
            f"{source} has {len(classes)} classes with images; the zero-shot protocol needs at "
            f"least {need} (train and test classes are disjoint and each side needs "
            f"{MIN_CLASSES_PER_SPLIT}). Add classes."
        )
    train, test = seeded_class_split(classes, seed, test_fraction)
    if min(len(train), len(test)) < MIN_CLASSES_PER_SPLIT:
        raise ConfigError(
            f"{source}: test_fraction={test_fraction} leaves {len(train)} train and {len(test)} "
            f"test classes out of {len(classes)}; each side needs at least "
            f"{MIN_CLASSES_PER_SPLIT}. Choose a test_fraction closer to 0.5."
        )
    return train, test


def contiguous_labels(item_classes: Sequence[str], classes: Sequence[str]) -> list[int]:
    """Map each item's class id to its index in ``classes`` (labels ``0..C-1``)."""
    index = {c: i for i, c in enumerate(classes)}
    return [index[c] for c in item_classes]


class ImageListDataset(torch.utils.data.Dataset):
    """A split of a photo dataset: a list of image files and their class ids.

    ``classes`` are the split's original class ids in label order; ``labels`` are contiguous
    ``0..C-1``; ``class_names`` are readable names in label order (the ids when the dataset has
    no names). ``transform`` receives the PIL RGB image, or, when ``prepared`` (the request's
    :data:`~dml_bench.data.base.PreparedLookup`) finds a cache of exactly these files
    (:mod:`dml_bench.data.prepared`), the same image already resized, as a uint8 tensor.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        item_classes: Sequence[str],
        classes: Sequence[str],
        transform: Callable[[Any], Any] | None,
        name: str,
        class_names: Sequence[str] | None = None,
        prepared: PreparedLookup | None = None,
    ) -> None:
        if len(paths) != len(item_classes):
            raise ValueError("paths and item_classes must have the same length")
        self.paths = [Path(p) for p in paths]
        self.classes: Sequence[str] = list(classes)
        self.labels: Sequence[int] = contiguous_labels(item_classes, self.classes)
        self.class_names = list(class_names) if class_names is not None else list(self.classes)
        if len(self.class_names) != len(self.classes):
            raise ValueError("class_names must have one entry per class")
        self.transform = transform
        self.name = name
        self.prepared: PixelSource | None = prepared(self.paths) if prepared else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image: Any = (
            self.prepared.image(index) if self.prepared is not None else load_rgb(self.paths[index])
        )
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def thumbnail(self, index: int, size: int = 64) -> np.ndarray:
        """The untransformed image of item ``index``, centre-cropped: uint8 ``size x size x 3``."""
        return square_thumbnail(load_rgb(self.paths[index]), size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, items={len(self)}, classes={len(self.classes)})"
        )
