"""``csv``: a no-code custom dataset listed in a CSV file.

Columns: ``path`` (an image file; a relative path resolves against the CSV's folder), ``label``
(any string naming the class) and an optional ``split`` (``train`` or ``test``). With a ``split``
column, the CSV's own split is used and must be class-disjoint (the zero-shot protocol, docs/protocol.md,
"Protocol"): a class in both splits is an error, not silently fixed. Without one, a seeded
shuffle of the classes sends ``test_fraction`` of them to test.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from dml_bench.data.base import DataRequest, DatasetConfig, DatasetSpec, Located
from dml_bench.data.images import (
    ImageListDataset,
    check_files_exist,
    check_split,
    check_test_fraction,
    natural_key,
    resolve_transform,
    split_custom_classes,
)
from dml_bench.errors import ConfigError, DatasetNotFoundError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label")
SPLIT_COLUMN = "split"
MAX_SHOWN = 5


@dataclass(frozen=True)
class CSVConfig(DatasetConfig):
    """``path``: the CSV file; ``seed``/``test_fraction`` split classes when it has no split."""

    path: str = ""
    seed: int = 0
    test_fraction: float = 0.5

    def __post_init__(self) -> None:
        check_test_fraction("csv", self.test_fraction)
        if self.seed < 0:
            raise ConfigError(f"csv: seed must be >= 0, got {self.seed}.")


@dataclass(frozen=True)
class Row:
    path: Path
    label: str
    split: str | None


def csv_path(config: CSVConfig) -> Path:
    if not config.path:
        raise ConfigError(
            "Dataset 'csv' needs a path: use --dataset csv:FILE (or set path=FILE), a CSV with "
            "the columns path,label and optionally split."
        )
    return Path(config.path).expanduser()


def read_rows(file: Path) -> list[Row]:
    """Every row of the CSV, paths resolved; malformed rows raise errors naming the line."""
    if not file.is_file():
        raise DatasetNotFoundError(
            f"CSV file {file} does not exist. Point the dataset at a CSV with the columns "
            "path,label (and optionally split)."
        )
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ConfigError(
                f"CSV file {file} lacks the column(s) {', '.join(missing)} (found: "
                f"{', '.join(columns) or 'none'}). Its header must name path,label and "
                "optionally split."
            )
        has_split = SPLIT_COLUMN in columns
        rows = []
        for line, raw in enumerate(reader, start=2):
            record = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            rows.append(_parse_row(record, has_split, file, line))
    if not rows:
        raise DatasetNotFoundError(f"CSV file {file} lists no images; add rows path,label.")
    return rows


def _parse_row(record: dict[str, str], has_split: bool, file: Path, line: int) -> Row:
    if not record.get("path") or not record.get("label"):
        raise ConfigError(f"CSV file {file}, line {line}: path and label must not be empty.")
    split = record.get(SPLIT_COLUMN, "").lower() if has_split else None
    if has_split and split not in ("train", "test"):
        raise ConfigError(
            f"CSV file {file}, line {line}: split must be 'train' or 'test', got "
            f"{record.get(SPLIT_COLUMN)!r}."
        )
    path = Path(record["path"]).expanduser()
    return Row(path if path.is_absolute() else file.parent / path, record["label"], split)


def _check_disjoint(rows: list[Row], file: Path) -> None:
    train = {r.label for r in rows if r.split == "train"}
    test = {r.label for r in rows if r.split == "test"}
    shared = sorted(train & test, key=natural_key)
    if shared:
        raise ConfigError(
            f"CSV file {file}: {len(shared)} labels appear in both the train and the test split "
            f"(e.g. {', '.join(shared[:MAX_SHOWN])}). Zero-shot retrieval needs disjoint train "
            "and test classes: fix the split column, or drop it to let dml-bench split the "
            "classes."
        )
    for name, labels in (("train", train), ("test", test)):
        if len(labels) < 2:
            raise ConfigError(
                f"CSV file {file}: the {name} split has {len(labels)} classes; it needs at least "
                "2. Fix the split column, or drop it to let dml-bench split the classes."
            )


def build(request: DataRequest, config: CSVConfig) -> ImageListDataset:
    split = check_split(request.split)
    file = csv_path(config)
    rows = read_rows(file)
    if rows[0].split is not None:
        _check_disjoint(rows, file)
        picked = [r for r in rows if r.split == split]
        classes = sorted({r.label for r in picked}, key=natural_key)
    else:
        all_classes = sorted({r.label for r in rows}, key=natural_key)
        train, test = split_custom_classes(
            all_classes, config.seed, config.test_fraction, f"CSV file {file}"
        )
        classes = train if split == "train" else test
        chosen = set(classes)
        picked = [r for r in rows if r.label in chosen]
    check_files_exist([r.path for r in picked], f"CSV file {file}")
    return ImageListDataset(
        paths=[r.path for r in picked],
        item_classes=[r.label for r in picked],
        classes=classes,
        transform=resolve_transform(request),
        name=f"csv/{split}",
        prepared=request.prepared,
    )


def locate(root: Path, config: CSVConfig) -> Located:
    if not config.path:
        return Located(path=Path("."), found=False, detail="no path set; use --dataset csv:FILE")
    file = Path(config.path).expanduser()
    found = file.is_file()
    return Located(path=file, found=found, detail="found" if found else "file does not exist")


SPEC: DatasetSpec[CSVConfig] = DatasetSpec(
    name="csv",
    description="Your images listed in a CSV (path,label[,split]); seeded class split if no split.",
    reference="dml-bench CSV layout",
    config_cls=CSVConfig,
    build=build,
    locate=locate,
    input_kind="photo",
    channels=3,
    recall_ks=(1, 2, 4, 8),
)
