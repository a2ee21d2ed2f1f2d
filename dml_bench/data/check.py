"""A full read of every image of a photo dataset (``dml-bench prepare --check``).

A corrupt image is otherwise found only when a run first reads it, possibly hours in (the run is
then recorded as interrupted, and resumes once the file is fixed). The check decodes every image
of both splits, as a run would, and lists every file that fails, by path, in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dml_bench.data.base import DataRequest, DatasetSpec


def corrupt_images(
    spec: DatasetSpec[Any],
    config: Any,
    root: Path,
    download: bool = False,
    progress: Callable[..., Any] | None = None,
) -> tuple[int, list[tuple[Path, str]]]:
    """(images read, [(path, error)] of those that cannot be decoded) over the train and test
    splits; a dataset whose splits hold no image files (e.g. tensors) reads 0 images."""
    from PIL import Image

    paths: list[Path] = []
    for split in ("train", "test"):
        dataset = spec.build(DataRequest(root, split, None, download), config)
        paths += list(getattr(dataset, "paths", []))
    bar = progress(total=len(paths), desc=f"check {spec.name}", unit="image") if progress else None
    bad: list[tuple[Path, str]] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.convert("RGB")  # decodes every pixel, as a run does
        except Exception as exc:  # PIL raises many kinds for broken files
            bad.append((path, f"{type(exc).__name__}: {exc}"))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return len(paths), bad
