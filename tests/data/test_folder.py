"""The image-folder dataset (``--dataset folder:PATH``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dml_bench.data import fakes, folder
from dml_bench.data.base import DataRequest, Split, assert_class_disjoint
from dml_bench.errors import ConfigError, DatasetNotFoundError


def build(path: Path | str, split: Split = "train", **values):
    config = folder.SPEC.make_config({"path": str(path), **values})
    return folder.build(DataRequest(root=Path("unused"), split=split), config)


def test_classes_split_disjoint_and_cover_the_tree(fake_image_folder):
    train, test = build(fake_image_folder, "train"), build(fake_image_folder, "test")
    assert_class_disjoint(train, test, "folder")
    sub_folders = sorted(p.name for p in fake_image_folder.iterdir())
    assert sorted([*train.classes, *test.classes]) == sub_folders
    assert len(train.classes) == len(test.classes) == 4
    for ds in (train, test):
        assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
        for path, label in zip(ds.paths, ds.labels, strict=True):
            assert path.parent.name == ds.classes[label]
        assert len(ds) == 3 * len(ds.classes)
    assert build(fake_image_folder, "test")[0][0].shape == (3, 227, 227)


def test_split_follows_the_seed_and_test_fraction(fake_image_folder):
    splits = {tuple(build(fake_image_folder, "test", seed=s).classes) for s in range(5)}
    assert len(splits) > 1
    assert len(build(fake_image_folder, "test", test_fraction=0.25).classes) == 2


def test_empty_class_folders_are_ignored(fake_image_folder):
    (fake_image_folder / "zz_empty").mkdir()
    all_classes = (
        build(fake_image_folder, "train").classes + build(fake_image_folder, "test").classes
    )
    assert "zz_empty" not in all_classes


def test_path_is_required():
    with pytest.raises(ConfigError, match="folder:PATH"):
        build("")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nope")):
        build(tmp_path / "nope")


def test_tree_without_class_folders_is_an_error(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="sub-folder"):
        build(tmp_path)


def test_too_few_classes_is_an_error(tmp_path):
    root = fakes.make_folder_tree(tmp_path, n_classes=3)
    with pytest.raises(DatasetNotFoundError, match="at least 4"):
        build(root)
    shutil.rmtree(root / "class_00")
    with pytest.raises(DatasetNotFoundError, match="2 classes"):
        build(root)


def test_test_fraction_that_starves_a_side_is_an_error(fake_image_folder):
    with pytest.raises(ConfigError, match="test_fraction"):
        build(fake_image_folder, test_fraction=0.05)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5])
def test_bad_test_fraction(value):
    with pytest.raises(ConfigError, match="test_fraction"):
        folder.SPEC.make_config({"path": "x", "test_fraction": value})


def test_locate(fake_image_folder, tmp_path):
    config = folder.SPEC.make_config({"path": str(fake_image_folder)})
    assert folder.locate(tmp_path, config).found
    assert not folder.locate(tmp_path, folder.SPEC.make_config()).found
