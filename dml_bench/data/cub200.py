"""``cub200``: Caltech-UCSD Birds-200-2011 with the zero-shot split of the paper.

docs/protocol.md, "Protocol" (following Song et al. 2016, which the paper adopts): classes 1-100 train
(5,864 images), classes 101-200 test (5,924 images). This is *not* the official classification
split of ``train_test_split.txt``, which we ignore.

Layout, as the authors distribute it (``CUB_200_2011.tgz`` extracted into the data root)::

    <root>/CUB_200_2011/images.txt               "<image_id> <relative path>"
    <root>/CUB_200_2011/image_class_labels.txt   "<image_id> <class_id>"
    <root>/CUB_200_2011/classes.txt              "<class_id> <class name>"
    <root>/CUB_200_2011/images/<class folder>/<image>.jpg

``classes`` holds the original class ids ("1".."200") as strings; ``class_names`` the names from
``classes.txt`` (e.g. "001.Black_footed_Albatross") in the same order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.utils import download_and_extract_archive

from dml_bench.data.base import DataRequest, DatasetConfig, DatasetSpec, Located
from dml_bench.data.images import (
    ImageListDataset,
    check_files_exist,
    check_split,
    how_to_get,
    parse_int,
    read_table,
    require_dataset_folder,
    require_file,
    resolve_transform,
)
from dml_bench.errors import DatasetNotFoundError

logger = logging.getLogger(__name__)

NAME = "CUB-200-2011"
FOLDER = "CUB_200_2011"
URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
ARCHIVE = "CUB_200_2011.tgz"
MD5 = "97eceeb196236b17998738112f37df78"
IMAGES_FILE, LABELS_FILE, CLASSES_FILE = "images.txt", "image_class_labels.txt", "classes.txt"
IMAGE_FOLDER = "images"
TRAIN_CLASSES = range(1, 101)
TEST_CLASSES = range(101, 201)
EXPECTED = f"{IMAGES_FILE}, {LABELS_FILE}, {CLASSES_FILE} and the folder {IMAGE_FOLDER}/"


@dataclass(frozen=True)
class CUB200Config(DatasetConfig):
    """No options: the split is fixed by the protocol."""


def is_complete(root: Path) -> bool:
    base = Path(root) / FOLDER
    files = (IMAGES_FILE, LABELS_FILE, CLASSES_FILE)
    return all((base / f).is_file() for f in files) and (base / IMAGE_FOLDER).is_dir()


def download(root: Path) -> None:
    """Fetch and extract the official archive (md5-checked); nothing to do when already there."""
    if is_complete(root):
        logger.info("%s already present in %s; skipping the download.", NAME, root)
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    download_and_extract_archive(URL, download_root=str(root), filename=ARCHIVE, md5=MD5)


def _read_annotations(base: Path) -> tuple[list[tuple[Path, int]], dict[int, str]]:
    """(image path, class id) for every listed image, and the class names."""
    hint = f"The {NAME} extraction in {base.parent} looks incomplete. " + how_to_get(
        URL, base.parent
    )
    for file in (IMAGES_FILE, LABELS_FILE, CLASSES_FILE):
        require_file(base / file, f"{NAME} annotation file {file}", hint)
    if not (base / IMAGE_FOLDER).is_dir():
        raise DatasetNotFoundError(
            f"{NAME}: the image folder {base / IMAGE_FOLDER} is missing. {hint}"
        )
    paths = {
        parse_int(row[0], base / IMAGES_FILE, NAME): row[1]
        for row in read_table(base / IMAGES_FILE, 2, NAME)
    }
    labels = {
        parse_int(row[0], base / LABELS_FILE, NAME): parse_int(row[1], base / LABELS_FILE, NAME)
        for row in read_table(base / LABELS_FILE, 2, NAME)
    }
    names = {
        parse_int(row[0], base / CLASSES_FILE, NAME): row[1]
        for row in read_table(base / CLASSES_FILE, 2, NAME)
    }
    unlabelled = sorted(set(paths) - set(labels))
    if unlabelled:
        raise DatasetNotFoundError(
            f"{NAME}: {len(unlabelled)} images of {base / IMAGES_FILE} have no class in "
            f"{base / LABELS_FILE} (e.g. image id {unlabelled[0]}). The annotation files do not "
            "match; extract the archive again."
        )
    items = [(base / IMAGE_FOLDER / paths[i], labels[i]) for i in sorted(paths)]
    return items, names


def build(request: DataRequest, config: CUB200Config) -> ImageListDataset:
    split = check_split(request.split)
    root = Path(request.root)
    if request.download:
        download(root)
    base = require_dataset_folder(root, FOLDER, IMAGES_FILE, NAME, EXPECTED, how_to_get(URL, root))
    items, names = _read_annotations(base)
    wanted = TRAIN_CLASSES if split == "train" else TEST_CLASSES
    chosen = [(path, label) for path, label in items if label in wanted]
    if not chosen:
        raise DatasetNotFoundError(
            f"{NAME}: {base / LABELS_FILE} lists no image of classes {wanted.start}-"
            f"{wanted.stop - 1} (the {split} split). The annotation files look incomplete; "
            "extract the archive again."
        )
    check_files_exist([path for path, _ in chosen], NAME)
    class_ids = sorted({label for _, label in chosen})
    return ImageListDataset(
        paths=[path for path, _ in chosen],
        item_classes=[str(label) for _, label in chosen],
        classes=[str(c) for c in class_ids],
        transform=resolve_transform(request),
        name=f"cub200/{split}",
        class_names=[names.get(c, str(c)) for c in class_ids],
        prepared=request.prepared,
    )


def locate(root: Path, config: CUB200Config) -> Located:
    base = Path(root) / FOLDER
    found = is_complete(root)
    detail = "found" if found else f"expected {EXPECTED} in {base}; get it from {URL}"
    return Located(path=base, found=found, detail=detail)


SPEC: DatasetSpec[CUB200Config] = DatasetSpec(
    name="cub200",
    description="CUB-200-2011 birds, zero-shot split: classes 1-100 train, 101-200 test.",
    reference=(
        "Wah, Branson, Welinder, Perona, Belongie. The Caltech-UCSD Birds-200-2011 Dataset. "
        "Caltech CNS-TR-2011-001, 2011"
    ),
    config_cls=CUB200Config,
    build=build,
    locate=locate,
    input_kind="photo",
    channels=3,
    recall_ks=(1, 2, 4, 8),
)
