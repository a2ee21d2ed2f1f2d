"""Input-pipeline throughput: dml-bench's photo pipeline against torchvision's ImageFolder.

Why: on a photo dataset (CUB-200-2011, Cars196, SOP) a training step on a small trunk can be
faster than decoding and augmenting its batch, so the input pipeline sets the pace of a run.
dml-bench adds layers a plain pipeline does not have (the dataset registry, per-item augmentation
seeds in :class:`~dml_bench.train.data.SeededItems` so a resumed run sees the same crops,
:class:`~dml_bench.train.sampling.StepBatchSampler` batches that are a pure function of
(seed, step)); this script checks that they cost nothing measurable.

What is measured, on the same JPEG files (generated once, in the official CUB-200-2011 layout):

* **ours**: exactly the training loop's DataLoader (``dml_bench.train.loop.batches``): the
  ``cub200`` dataset built through the registry by ``load_run_data`` with the paper's train
  transforms (resize 256, random crop 227, horizontal flip, normalise; docs/protocol.md "Paper training
  set-up"), wrapped in ``SeededItems``, batches from ``StepBatchSampler`` over a random
  ``BatchPlan`` (as Proxy-NCA trains), ``collate``, ``num_workers`` workers, prefetch factor 4,
  no pinned memory on CPU.
* **prepared**: the same loader reading a ``dml-bench prepare`` cache of the tree (resize 256
  done once, :mod:`dml_bench.data.prepared`): the run sees the very same pixels, without
  decoding a JPEG. Building the cache is timed once, apart, as the one-off cost it is.
* **baseline**: ``torchvision.datasets.ImageFolder`` over a folder-per-class view of the same
  files (symlinks), its default PIL loader, the same transforms written with
  ``torchvision.transforms.v2``, and a plain ``DataLoader(shuffle=True, drop_last=True)`` with
  the same batch size and workers (default prefetch factor).

Each side reads one epoch of the training split (``--images`` images, the last partial batch
dropped on both sides) and reports images/s: delivered images divided by the wall-clock time from
the moment its iterator exists (workers forked, nothing fetched yet) to the last batch. Building
the dataset, the loader and its iterator (ours: ``plan_runs`` and ``load_run_data``, which parse
the annotation files and ``stat`` every listed image; baseline: ``ImageFolder``'s directory scan)
is timed apart as "setup"; each child imports its side's modules before any clock starts. Each
(side, repeat) runs in a fresh child process, so the sides share no allocator state or worker pool,
and each child's peak resident set is its own: ``ru_maxrss`` of the main process and of its largest
worker (workers are forked, so their figure includes pages shared with the parent).
Repeats are interleaved (baseline, ours, baseline, ours, ...) so drifts in machine load hit both
alike; the figures are medians. Goals: ours / baseline >= 1.0 (the layers cost nothing);
prepared / baseline >= 2.0 (issue: "add a pre-resized uint8 cache if it is needed to get 2x").

The images are synthetic (no download): smooth colour noise plus fine grain, 500 x 375 by default
(the typical CUB photo), saved as JPEG quality 90 (about 64 KB a file), so decoding and resizing do
the work a photo asks for (the solid-colour files of ``dml_bench.data.fakes`` decode almost for
free). Generation takes 10-15 s per thousand images on 2 cores; ``--root`` keeps the tree.

    python benchmarks/data.py [--images 2000] [--size 500x375] [--workers 2] [--batch-size 32]
                              [--repeats 3] [--root DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CUB_FOLDER = "CUB_200_2011"
TRAIN_CLASS_IDS = range(1, 101)  # the zero-shot split: classes 1-100 train (dml_bench.data.cub200)
TEST_CLASS_IDS = (101, 102)  # the loader also builds the test split; two tiny classes suffice
TEST_IMAGES_PER_CLASS = 2
JPEG_QUALITY = 90
GRAIN_SIGMA = 6.0  # fine noise on top of the smooth field, so the JPEG holds photo-like detail
SMOOTH_CELL = 12  # pixels per random control point of the smooth field
MARKER = "benchmark_tree.json"
SEED = 0
RESIZE, CROP = 256, 227
METHOD = "proxy_nca"  # random batches, as the paper trains Proxy-NCA


# ----------------------------------------------------------------------------- the image tree
def photo_like_jpeg(path: Path, size: tuple[int, int], rng: np.random.Generator) -> None:
    """A ``size`` (width, height) JPEG of smooth colour noise plus grain.

    Solid-colour files (``dml_bench.data.fakes``) decode far faster than photos; a smooth field
    with grain compresses to a file size and decode cost close to a real photo's.
    """
    width, height = size
    coarse = rng.integers(0, 256, (height // SMOOTH_CELL + 2, width // SMOOTH_CELL + 2, 3))
    field = Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    grain = rng.normal(0.0, GRAIN_SIGMA, (height, width, 3))
    pixels = np.clip(np.asarray(field, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=JPEG_QUALITY)


def cub_items(n_images: int) -> list[tuple[int, str]]:
    """(class id, relative path) of every image: ``n_images`` spread over the 100 train classes,
    then a few test-class images so the test split (built by ``load_run_data``) is not empty."""
    items = []
    for k in range(n_images):
        class_id = TRAIN_CLASS_IDS[k % len(TRAIN_CLASS_IDS)]
        items.append((class_id, f"{class_id:03d}.Bird_{class_id}/Bird_{class_id}_{k:05d}.jpg"))
    for class_id in TEST_CLASS_IDS:
        for k in range(TEST_IMAGES_PER_CLASS):
            items.append((class_id, f"{class_id:03d}.Bird_{class_id}/Bird_{class_id}_{k:05d}.jpg"))
    return items


def make_benchmark_tree(root: Path, n_images: int, size: tuple[int, int]) -> Path:
    """The official ``CUB_200_2011`` layout under ``root``; reused when it already matches."""
    base = root / CUB_FOLDER
    wanted = {"images": n_images, "size": list(size), "quality": JPEG_QUALITY, "seed": SEED}
    marker = base / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return root
    rng = np.random.default_rng(SEED)
    items = cub_items(n_images)
    shutil.rmtree(base, ignore_errors=True)  # a tree of another size: start afresh
    for _class_id, relative in items:
        photo_like_jpeg(base / "images" / relative, size, rng)
    class_ids = sorted({c for c, _ in items})
    lines = {
        "images.txt": [f"{i} {rel}" for i, (_, rel) in enumerate(items, start=1)],
        "image_class_labels.txt": [f"{i} {c}" for i, (c, _) in enumerate(items, start=1)],
        "classes.txt": [f"{c} {c:03d}.Bird_{c}" for c in class_ids],
    }
    for name, rows in lines.items():
        (base / name).write_text("\n".join(rows) + "\n")
    marker.write_text(json.dumps(wanted))
    return root


def image_folder_view(root: Path, view: Path) -> Path:
    """A folder-per-class tree of symlinks to the train-class images, for ``ImageFolder``."""
    shutil.rmtree(view, ignore_errors=True)
    images = root / CUB_FOLDER / "images"
    for class_folder in sorted(images.iterdir()):
        if int(class_folder.name.split(".")[0]) not in TRAIN_CLASS_IDS:
            continue
        target = view / class_folder.name
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_folder.iterdir()):
            (target / image.name).symlink_to(image.resolve())
    return view


# ----------------------------------------------------------------------------- the two sides
def ours_loader(root: Path, batch_size: int, workers: int, prepared: bool) -> Iterator[Any]:
    """The training loop's own loader (``loop.batches``), one epoch of the cub200 train split,
    reading the prepared cache or (``prepared=False``) decoding the JPEG files."""
    import torch

    from dml_bench.train import ExperimentRequest, plan_runs
    from dml_bench.train.data import load_run_data
    from dml_bench.train.loop import batches
    from dml_bench.train.sampling import BatchPlan

    run_params = {"data_root": str(root), "batch_size": batch_size, "num_workers": workers}
    run_params |= {"prepared": prepared}
    run_params |= {"resize": RESIZE, "crop": CROP}
    request = ExperimentRequest(
        methods=(METHOD,), dataset="cub200", seeds=(SEED,), run_params=run_params
    )
    (config,) = plan_runs(request)
    data = load_run_data(config)
    plan = BatchPlan(data.train.labels, config.batch_size, config.seed, m_per_class=None)
    config = dataclasses.replace(config, steps=plan.batches_per_epoch)
    return batches(data, plan, config, start=0, device=torch.device("cpu"))


def baseline_loader(view: Path, batch_size: int, workers: int) -> Iterator[Any]:
    """What a researcher writes by hand: ImageFolder + v2 transforms + a shuffling DataLoader."""
    import torch
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.Resize(RESIZE),
            v2.RandomCrop(CROP),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    loader = torch.utils.data.DataLoader(
        ImageFolder(str(view), transform=transform),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(SEED),
    )
    return iter(loader)


def count_images(batches: Iterable[Any]) -> int:
    n = 0
    for images, _labels in batches:
        n += len(images)
    return n


def import_side(side: str) -> None:
    """Import what one side uses before its clock starts (import time is not pipeline time);
    only that side's modules, so each child's peak RSS is that side's own."""
    import torch.utils.data  # noqa: F401
    import torchvision.transforms.v2  # noqa: F401

    if side == "baseline":
        import torchvision.datasets  # noqa: F401
    else:
        import dml_bench.train.data
        import dml_bench.train.loop  # noqa: F401
        from dml_bench.data import DATASETS

        DATASETS.get("cub200")  # loads the registry (and any plugins)


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child(side: str, root: Path, view: Path, batch_size: int, workers: int) -> None:
    """Child process: time building one side's loader and reading one epoch; print one JSON line."""
    import_side(side)
    start = time.perf_counter()
    if side in ("ours", "prepared"):
        batches = ours_loader(root, batch_size, workers, prepared=side == "prepared")
    else:
        batches = baseline_loader(view, batch_size, workers)
    built, cpu_before = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    n = count_images(batches)  # the workers exit (and are reaped) when the epoch ends
    report = {
        "images": n,
        "setup_s": built - start,
        "epoch_s": time.perf_counter() - built,
        "cpu_s": cpu_seconds(resource.RUSAGE_SELF)
        - cpu_before
        + cpu_seconds(resource.RUSAGE_CHILDREN),
        "main_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(report))


# ----------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class Measurement:
    images: int
    setup_s: float
    epoch_s: float
    cpu_s: float
    main_peak_mb: float
    worker_peak_mb: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.epoch_s

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu_s / self.images


def measure(side: str, root: Path, view: Path, args: argparse.Namespace) -> Measurement:
    command = [sys.executable, __file__, "--child", side, "--root", str(root)]
    command += ["--view", str(view), "--batch-size", str(args.batch_size)]
    command += ["--workers", str(args.workers)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"the {side} child failed:\n{completed.stderr}")
    return Measurement(**json.loads(completed.stdout.strip().splitlines()[-1]))


def mean_file_kb(root: Path) -> float:
    files = list((root / CUB_FOLDER / "images").rglob("*.jpg"))
    return sum(f.stat().st_size for f in files) / len(files) / 1024


def summarise(name: str, runs: list[Measurement]) -> tuple[float, float]:
    """Print one side's medians; return (images/s, CPU ms per image)."""
    rates = [r.images_per_s for r in runs]
    rate, cpu = statistics.median(rates), statistics.median(r.cpu_ms_per_image for r in runs)
    setup = statistics.median(r.setup_s for r in runs)
    main_mb = max(r.main_peak_mb for r in runs)
    worker_mb = max(r.worker_peak_mb for r in runs)
    print(
        f"{name:<9}: {rate:7.1f} images/s  (repeats: {', '.join(f'{v:.1f}' for v in rates)})\n"
        f"{'':<11}CPU {cpu:.2f} ms/image (main + workers), setup {setup:.2f} s, "
        f"peak RSS main {main_mb:.0f} MB, largest worker {worker_mb:.0f} MB"
    )
    return rate, cpu


def prepare_tree(root: Path, workers: int) -> None:
    """Build the prepared cache of both splits (once; a complete cache is reused) and say what
    it cost: the one-off price of the prepared side."""
    from dml_bench.data import DATASETS
    from dml_bench.data.prepared import prepare_splits

    spec = DATASETS.get("cub200")
    started = time.perf_counter()
    results = prepare_splits(spec, spec.make_config({}), root, RESIZE, num_workers=workers)
    seconds = time.perf_counter() - started
    images, nbytes = sum(r.images for r in results), sum(r.bytes for r in results)
    reused = all(r.already_complete for r in results)
    print(
        f"prepared cache: {images} images, {nbytes / 2**20:.0f} MB "
        + ("(reused)" if reused else f"built in {seconds:.1f} s ({images / seconds:.0f} images/s)")
    )


def run_benchmark(args: argparse.Namespace, root: Path) -> None:
    started = time.perf_counter()
    make_benchmark_tree(root, args.images, args.size)
    view = image_folder_view(root, root / "image_folder_view")
    print(
        f"tree: {args.images} train images {args.size[0]}x{args.size[1]}, mean "
        f"{mean_file_kb(root):.0f} KB/file, ready in {time.perf_counter() - started:.1f} s"
    )
    prepare_tree(root, args.workers)
    print(
        f"batch {args.batch_size}, workers {args.workers}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} (1 min) at start"
    )
    sides = ("baseline", "ours", "prepared")
    runs: dict[str, list[Measurement]] = {side: [] for side in sides}
    for repeat in range(args.repeats):  # interleaved and rotated, so load drifts hit all alike
        for k in range(len(sides)):
            side = sides[(repeat + k) % len(sides)]
            runs[side].append(measure(side, root, view, args))
    rates = {side: summarise(side, runs[side]) for side in sides}
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at end")
    b_rate, b_cpu = rates["baseline"]
    for side, goal in (("ours", 1.0), ("prepared", 2.0)):
        rate, cpu = rates[side]
        pairs = zip(runs[side], runs["baseline"], strict=True)
        paired = statistics.median(o.images_per_s / b.images_per_s for o, b in pairs)
        print(
            f"ratio {side} / baseline: {rate / b_rate:.3f} images/s (goal >= {goal}); median of "
            f"the per-repeat ratios {paired:.3f}; CPU per image {cpu / b_cpu:.3f} (lower is better)"
        )


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        message = f"--size takes WIDTHxHEIGHT, e.g. 500x375, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if min(width, height) < CROP:
        raise argparse.ArgumentTypeError(f"--size must be at least {CROP} on each side")
    return width, height


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="train images to read")
    parser.add_argument("--size", type=parse_size, default=(500, 375), help="WIDTHxHEIGHT")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, help="keep the generated tree here (reused)")
    parser.add_argument("--child", choices=["ours", "prepared", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--view", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.images < args.batch_size:
        parser.error("--images must be at least one batch (--batch-size)")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child, args.root, args.view, args.batch_size, args.workers)
    elif args.root is not None:
        run_benchmark(args, args.root.resolve())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run_benchmark(args, Path(tmp))


if __name__ == "__main__":
    main()
