"""``folder``: a no-code custom dataset from an image-folder tree, one sub-folder per class.

``--dataset folder:PATH`` (CLI) maps to this dataset with ``path=PATH``::

    PATH/<class name>/<image>.jpg|png|...

Listing reuses torchvision's :func:`~torchvision.datasets.folder.find_classes` and
:func:`~torchvision.datasets.folder.make_dataset` (its extensions, its sorted class order). A
folder tree defines no zero-shot split, so the classes are split by a seeded shuffle:
``test_fraction`` of them test, the rest train, disjoint by construction (docs/protocol.md, "Protocol").
Class folders without any image are ignored, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from dml_bench.data.base import DataRequest, DatasetConfig, DatasetSpec, Located
from dml_bench.data.images import (
    ImageListDataset,
    check_split,
    check_test_fraction,
    resolve_transform,
    split_custom_classes,
)
from dml_bench.errors import ConfigError, DatasetNotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderConfig(DatasetConfig):
    """``path``: the tree's root (``--dataset folder:PATH``); ``seed`` picks the class split."""

    path: str = ""
    seed: int = 0
    test_fraction: float = 0.5

    def __post_init__(self) -> None:
        check_test_fraction("folder", self.test_fraction)
        if self.seed < 0:
            raise ConfigError(f"folder: seed must be >= 0, got {self.seed}.")


def tree_path(config: FolderConfig) -> Path:
    if not config.path:
        raise ConfigError(
            "Dataset 'folder' needs a path: use --dataset folder:PATH (or set path=PATH), where "
            "PATH holds one sub-folder of images per class."
        )
    return Path(config.path).expanduser()


def list_images(tree: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Classes that hold at least one image (sorted), and (image path, class) per image."""
    if not tree.is_dir():
        raise DatasetNotFoundError(
            f"Image folder {tree} does not exist (or is not a folder). Point --dataset folder:PATH "
            "at a folder that holds one sub-folder of images per class."
        )
    try:
        names, class_to_idx = find_classes(str(tree))
    except FileNotFoundError:
        raise DatasetNotFoundError(
            f"Image folder {tree} has no class sub-folders. Put the images of each class in their "
            f"own sub-folder: {tree}/<class>/<image>.jpg."
        ) from None
    samples = make_dataset(str(tree), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    items = [(Path(path), names[index]) for path, index in samples]
    present = {c for _, c in items}
    used = [n for n in names if n in present]
    empty = [n for n in names if n not in present]
    if empty:
        logger.warning(
            "Ignoring %d class folders of %s without images (%s)", len(empty), tree, empty[:5]
        )
    return used, items


def build(request: DataRequest, config: FolderConfig) -> ImageListDataset:
    split = check_split(request.split)
    tree = tree_path(config)
    classes, items = list_images(tree)
    train, test = split_custom_classes(
        classes, config.seed, config.test_fraction, f"Image folder {tree}"
    )
    chosen = set(train if split == "train" else test)
    picked = [(p, c) for p, c in items if c in chosen]
    return ImageListDataset(
        paths=[p for p, _ in picked],
        item_classes=[c for _, c in picked],
        classes=train if split == "train" else test,
        transform=resolve_transform(request),
        name=f"folder/{split}",
        prepared=request.prepared,
    )


def locate(root: Path, config: FolderConfig) -> Located:
    if not config.path:
        return Located(path=Path("."), found=False, detail="no path set; use --dataset folder:PATH")
    tree = Path(config.path).expanduser()
    found = tree.is_dir()
    detail = "found" if found else "folder does not exist"
    return Located(path=tree, found=found, detail=detail)


SPEC: DatasetSpec[FolderConfig] = DatasetSpec(
    name="folder",
    description="Your images, one sub-folder per class (--dataset folder:PATH); seeded class split.",
    reference="torchvision ImageFolder layout",
    config_cls=FolderConfig,
    build=build,
    locate=locate,
    input_kind="photo",
    channels=3,
    recall_ks=(1, 2, 4, 8),
)
