"""``sop``: Stanford Online Products with the zero-shot split of its authors and the paper.

docs/protocol.md, "Protocol": ``Ebay_train.txt`` (11,318 classes, 59,551 images) trains and
``Ebay_test.txt`` (11,316 classes, 60,502 images) tests; the two files share no class, which
:func:`build` checks. Recall@K is reported at K = 1, 10, 100, 1000.

Layout, as ``Stanford_Online_Products.zip`` extracts into the data root::

    <root>/Stanford_Online_Products/Ebay_train.txt   header "image_id class_id super_class_id path"
    <root>/Stanford_Online_Products/Ebay_test.txt
    <root>/Stanford_Online_Products/Ebay_info.txt    (both splits; not needed here)
    <root>/Stanford_Online_Products/<super class>_final/<image>.JPG

``classes`` holds the original ``class_id`` values as strings.
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
    natural_key,
    parse_int,
    read_table,
    require_dataset_folder,
    require_file,
    resolve_transform,
)
from dml_bench.errors import DatasetNotFoundError

logger = logging.getLogger(__name__)

NAME = "Stanford Online Products"
FOLDER = "Stanford_Online_Products"
URL = "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip"
ARCHIVE = "Stanford_Online_Products.zip"
MD5 = "7f73d41a2f44250d4779881525aea32e"
SPLIT_FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}
INFO_FILE = "Ebay_info.txt"
EXPECTED = f"{SPLIT_FILES['train']}, {SPLIT_FILES['test']} and the image folders (*_final/)"


@dataclass(frozen=True)
class SOPConfig(DatasetConfig):
    """No options: the split is fixed by the dataset's own files."""


def is_complete(root: Path) -> bool:
    base = Path(root) / FOLDER
    return all((base / f).is_file() for f in SPLIT_FILES.values())


def download(root: Path) -> None:
    """Fetch and extract the official archive (md5-checked); nothing to do when already there."""
    if is_complete(root):
        logger.info("%s already present in %s; skipping the download.", NAME, root)
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    download_and_extract_archive(URL, download_root=str(root), filename=ARCHIVE, md5=MD5)


def read_split(path: Path) -> list[tuple[str, int]]:
    """(relative image path, class id) per line of an ``Ebay_*.txt`` file (header skipped)."""
    rows = read_table(path, 4, NAME, header=True)
    return [(row[3], parse_int(row[1], path, NAME)) for row in rows]


def build(request: DataRequest, config: SOPConfig) -> ImageListDataset:
    split = check_split(request.split)
    root = Path(request.root)
    if request.download:
        download(root)
    how = how_to_get(URL, root)
    base = require_dataset_folder(root, FOLDER, SPLIT_FILES["train"], NAME, EXPECTED, how)
    for file in SPLIT_FILES.values():
        require_file(base / file, f"{NAME} split file {file}", how)
    items = read_split(base / SPLIT_FILES[split])
    other = "test" if split == "train" else "train"
    shared = {c for _, c in items} & {c for _, c in read_split(base / SPLIT_FILES[other])}
    if shared:
        raise DatasetNotFoundError(
            f"{NAME}: {len(shared)} class ids appear in both {base / SPLIT_FILES['train']} and "
            f"{base / SPLIT_FILES['test']} (e.g. {min(shared)}); the official files are "
            f"class-disjoint, so these are not. {how}"
        )
    paths = [base / rel for rel, _ in items]
    check_files_exist(paths, NAME)
    classes = sorted({str(c) for _, c in items}, key=natural_key)
    return ImageListDataset(
        paths=paths,
        item_classes=[str(c) for _, c in items],
        classes=classes,
        transform=resolve_transform(request),
        name=f"sop/{split}",
        prepared=request.prepared,
    )


def locate(root: Path, config: SOPConfig) -> Located:
    base = Path(root) / FOLDER
    found = is_complete(root)
    detail = "found" if found else f"expected {EXPECTED} in {base}; get it from {URL}"
    return Located(path=base, found=found, detail=detail)


SPEC: DatasetSpec[SOPConfig] = DatasetSpec(
    name="sop",
    description="Stanford Online Products, zero-shot split: Ebay_train.txt / Ebay_test.txt.",
    reference=(
        "Oh Song, Xiang, Jegelka, Savarese. Deep Metric Learning via Lifted Structured Feature "
        "Embedding. CVPR 2016"
    ),
    config_cls=SOPConfig,
    build=build,
    locate=locate,
    input_kind="photo",
    channels=3,
    recall_ks=(1, 10, 100, 1000),
)
