"""``cars196``: Stanford Cars (196 classes) with the zero-shot split of the paper.

docs/protocol.md, "Protocol": classes 1-98 train (8,054 images), classes 99-196 test (8,131 images). This
is *not* the official classification split (the ``test`` field of the annotations), which we
ignore.

Layout: the all-images release that metric-learning papers use, ``car_ims.tgz`` (16,185 images)
and ``cars_annos.mat``, both in a folder named ``cars196`` under the data root::

    <root>/cars196/cars_annos.mat      struct array "annotations": relative_im_path, class, ...
    <root>/cars196/car_ims/000001.jpg  (relative_im_path is "car_ims/000001.jpg")

The annotation file is a MATLAB file read with :func:`scipy.io.loadmat`. ``classes`` holds the
original class ids ("1".."196"); ``class_names`` the make/model names from ``class_names``.

The authors' download links (``imagenet.stanford.edu/internal/car196/``) are often offline. The
download is idempotent and md5-checked: copies of ``car_ims.tgz`` and ``cars_annos.mat`` from a
mirror placed in ``<root>/cars196`` are verified and used without any network access.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat
from torchvision.datasets.utils import download_and_extract_archive, download_url

from dml_bench.data.base import DataRequest, DatasetConfig, DatasetSpec, Located
from dml_bench.data.images import (
    ImageListDataset,
    check_files_exist,
    check_split,
    require_dataset_folder,
    require_file,
    resolve_transform,
)
from dml_bench.errors import DatasetNotFoundError

logger = logging.getLogger(__name__)

NAME = "Cars196"
FOLDER = "cars196"
IMAGES_URL = "http://imagenet.stanford.edu/internal/car196/car_ims.tgz"
IMAGES_ARCHIVE = "car_ims.tgz"
IMAGES_MD5 = "d5c8f0aa497503f355e17dc7886c3f14"
ANNOTATIONS_URL = "http://imagenet.stanford.edu/internal/car196/cars_annos.mat"
ANNOTATIONS_FILE = "cars_annos.mat"
ANNOTATIONS_MD5 = "b407c6086d669747186bd1d764ff9dbc"
IMAGE_FOLDER = "car_ims"
TRAIN_CLASSES = range(1, 99)
TEST_CLASSES = range(99, 197)
EXPECTED = f"{ANNOTATIONS_FILE} and the folder {IMAGE_FOLDER}/"
PAGE = "https://ai.stanford.edu/~jkrause/cars/car_dataset.html"


@dataclass(frozen=True)
class Cars196Config(DatasetConfig):
    """No options: the split is fixed by the protocol."""


def is_complete(root: Path) -> bool:
    base = Path(root) / FOLDER
    return (base / ANNOTATIONS_FILE).is_file() and (base / IMAGE_FOLDER).is_dir()


def download(root: Path) -> None:
    """Fetch the images archive and the annotation file (md5-checked) into ``<root>/cars196``."""
    if is_complete(root):
        logger.info("%s already present in %s; skipping the download.", NAME, root)
        return
    base = Path(root) / FOLDER
    base.mkdir(parents=True, exist_ok=True)
    download_and_extract_archive(
        IMAGES_URL, download_root=str(base), filename=IMAGES_ARCHIVE, md5=IMAGES_MD5
    )
    download_url(ANNOTATIONS_URL, root=str(base), filename=ANNOTATIONS_FILE, md5=ANNOTATIONS_MD5)


def _how(root: Path) -> str:
    return (
        f"Download it with --download (download=True from Python), or fetch {IMAGES_URL} and "
        f"{ANNOTATIONS_URL} (see {PAGE}), put both in {Path(root) / FOLDER} and extract the "
        "archive there; or point --data-root (or $DML_BENCH_DATA_ROOT) at the folder that "
        "already holds it."
    )


def _field(annotations: np.ndarray, name: str, path: Path) -> list[Any]:
    if annotations.dtype.names is None or name not in annotations.dtype.names:
        raise DatasetNotFoundError(
            f"{NAME}: {path} has no field {name!r} in its 'annotations' struct; it is not the "
            f"all-images annotation file {ANNOTATIONS_FILE} (md5 {ANNOTATIONS_MD5}). {_how(path)}"
        )
    return [np.asarray(v).squeeze().item() for v in annotations[name]]


def read_annotations(path: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(relative image path, class id) per image, and the class names (index = id - 1)."""
    try:
        mat = loadmat(str(path), squeeze_me=True)
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DatasetNotFoundError(
            f"{NAME}: cannot read the annotation file {path} ({exc}); it is corrupt. "
            f"{_how(path.parent.parent)}"
        ) from None
    if "annotations" not in mat:
        raise DatasetNotFoundError(
            f"{NAME}: {path} holds no 'annotations' variable; it is not {ANNOTATIONS_FILE} "
            f"(md5 {ANNOTATIONS_MD5}). {_how(path.parent.parent)}"
        )
    annotations = np.atleast_1d(mat["annotations"]).ravel()
    paths = [str(p) for p in _field(annotations, "relative_im_path", path)]
    classes = [int(c) for c in _field(annotations, "class", path)]
    names = [str(n) for n in np.atleast_1d(mat.get("class_names", np.array([]))).ravel()]
    return list(zip(paths, classes, strict=True)), names


def build(request: DataRequest, config: Cars196Config) -> ImageListDataset:
    split = check_split(request.split)
    root = Path(request.root)
    if request.download:
        download(root)
    base = require_dataset_folder(root, FOLDER, ANNOTATIONS_FILE, NAME, EXPECTED, _how(root))
    require_file(base / ANNOTATIONS_FILE, f"{NAME} annotation file {ANNOTATIONS_FILE}", _how(root))
    if not (base / IMAGE_FOLDER).is_dir():
        raise DatasetNotFoundError(
            f"{NAME}: the image folder {base / IMAGE_FOLDER} is missing. {_how(root)}"
        )
    items, names = read_annotations(base / ANNOTATIONS_FILE)
    wanted = TRAIN_CLASSES if split == "train" else TEST_CLASSES
    chosen = [(base / rel, label) for rel, label in items if label in wanted]
    if not chosen:
        raise DatasetNotFoundError(
            f"{NAME}: {base / ANNOTATIONS_FILE} lists no image of classes {wanted.start}-"
            f"{wanted.stop - 1} (the {split} split); the file looks incomplete. {_how(root)}"
        )
    check_files_exist([path for path, _ in chosen], NAME)
    class_ids = sorted({label for _, label in chosen})
    return ImageListDataset(
        paths=[path for path, _ in chosen],
        item_classes=[str(label) for _, label in chosen],
        classes=[str(c) for c in class_ids],
        transform=resolve_transform(request),
        name=f"cars196/{split}",
        class_names=[names[c - 1] if 0 < c <= len(names) else str(c) for c in class_ids],
        prepared=request.prepared,
    )


def locate(root: Path, config: Cars196Config) -> Located:
    base = Path(root) / FOLDER
    found = is_complete(root)
    detail = "found" if found else f"expected {EXPECTED} in {base}; see {PAGE}"
    return Located(path=base, found=found, detail=detail)


SPEC: DatasetSpec[Cars196Config] = DatasetSpec(
    name="cars196",
    description="Stanford Cars (196 models), zero-shot split: classes 1-98 train, 99-196 test.",
    reference=(
        "Krause, Stark, Deng, Fei-Fei. 3D Object Representations for Fine-Grained "
        "Categorization. ICCV Workshops (3dRR), 2013"
    ),
    config_cls=Cars196Config,
    build=build,
    locate=locate,
    input_kind="photo",
    channels=3,
    recall_ks=(1, 2, 4, 8),
)
