"""The CSV-listed dataset (registered as ``csv``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dml_bench.data import csv as csv_dataset
from dml_bench.data import fakes
from dml_bench.data.base import DataRequest, Split, assert_class_disjoint
from dml_bench.errors import ConfigError, DatasetNotFoundError


def build(path: Path | str, split: Split = "train", **values):
    config = csv_dataset.SPEC.make_config({"path": str(path), **values})
    return csv_dataset.build(DataRequest(root=Path("unused"), split=split), config)


def read(file: Path) -> list[dict[str, str]]:
    with file.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write(file: Path, rows: list[list[str]]) -> Path:
    with file.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return file


def test_name_is_csv_and_the_module_does_not_shadow_the_standard_library():
    assert csv_dataset.SPEC.name == "csv" and csv_dataset.__name__ == "dml_bench.data.csv"
    assert csv_dataset.csv is csv  # absolute imports: `import csv` inside it is the stdlib's


def test_without_split_column_classes_are_split_by_seed(fake_csv_file):
    rows = read(fake_csv_file)
    train, test = build(fake_csv_file, "train"), build(fake_csv_file, "test")
    assert_class_disjoint(train, test, "csv")
    assert sorted([*train.classes, *test.classes]) == sorted({r["label"] for r in rows})
    assert len(train) + len(test) == len(rows)
    listed = {(str(fake_csv_file.parent / r["path"]), r["label"]) for r in rows}
    for ds in (train, test):
        assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
        got = {(str(p), ds.classes[y]) for p, y in zip(ds.paths, ds.labels, strict=True)}
        assert got <= listed
    splits = {tuple(build(fake_csv_file, "test", seed=s).classes) for s in range(5)}
    assert len(splits) > 1


def test_split_column_is_used(fake_csv_file_with_split):
    rows = read(fake_csv_file_with_split)
    for split in ("train", "test"):
        ds = build(fake_csv_file_with_split, split)
        assert set(ds.classes) == {r["label"] for r in rows if r["split"] == split}
        assert len(ds) == sum(r["split"] == split for r in rows)


def test_absolute_paths_are_kept(tmp_path):
    images = fakes.make_folder_tree(tmp_path / "imgs", n_classes=4, per_class=2)
    rows = [["path", "label"]] + [
        [str(p.resolve()), p.parent.name] for p in sorted(images.rglob("*.png"))
    ]
    (tmp_path / "elsewhere").mkdir()
    file = write(tmp_path / "elsewhere" / "list.csv", rows)
    ds = build(file, "train")
    assert all(p.is_absolute() and p.is_file() for p in ds.paths)


def test_split_column_with_shared_labels_breaks_the_protocol(tmp_path):
    fakes.make_csv_tree(tmp_path, with_split=True)
    rows = [["path", "label", "split"]] + [
        [r["path"], r["label"], r["split"]] for r in read(tmp_path / "dataset.csv")
    ]
    rows.append([rows[1][0], rows[1][1], "test"])
    write(tmp_path / "dataset.csv", rows)
    with pytest.raises(ConfigError, match="both"):
        build(tmp_path / "dataset.csv")


def test_bad_split_value_names_the_line(tmp_path):
    fakes.make_csv_tree(tmp_path, n_classes=4)
    file = write(
        tmp_path / "bad.csv", [["path", "label", "split"], ["images/c0/0.jpg", "a", "val"]]
    )
    with pytest.raises(ConfigError, match="line 2"):
        build(file)


def test_missing_column_is_named(tmp_path):
    file = write(tmp_path / "bad.csv", [["file", "label"], ["x.jpg", "a"]])
    with pytest.raises(ConfigError, match="path"):
        build(file)


def test_empty_csv_is_an_error(tmp_path):
    file = write(tmp_path / "empty.csv", [["path", "label"]])
    with pytest.raises(DatasetNotFoundError, match="no images"):
        build(file)


def test_missing_csv_and_missing_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nope.csv")):
        build(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="path"):
        build("")


def test_missing_image_is_reported_by_path(fake_csv_file):
    rows = read(fake_csv_file)
    split = "train" if rows[0]["label"] in build(fake_csv_file, "train").classes else "test"
    missing = fake_csv_file.parent / rows[0]["path"]
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match=str(missing)):
        build(fake_csv_file, split)


def test_too_few_classes(tmp_path):
    file = fakes.make_csv_tree(tmp_path, n_classes=3)
    with pytest.raises(DatasetNotFoundError, match="at least 4"):
        build(file)
