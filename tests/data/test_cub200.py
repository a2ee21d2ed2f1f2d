"""CUB-200-2011 on a fake tree in the official layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from dml_bench.data import DATASETS, cub200, fakes
from dml_bench.data.base import DataRequest, Split, assert_class_disjoint
from dml_bench.errors import DatasetNotFoundError, UserError


def build(root: Path, split: Split = "train", **kwargs):
    return cub200.build(DataRequest(root=root, split=split, **kwargs), cub200.SPEC.make_config())


def expected_classes(root: Path) -> dict[str, set[int]]:
    """Independent reading of the fake's labels: which class ids belong to which split."""
    labels = pd.read_csv(
        root / "CUB_200_2011" / "image_class_labels.txt", sep=" ", names=["image", "cls"]
    )
    ids = set(labels["cls"])
    return {"train": {c for c in ids if c <= 100}, "test": {c for c in ids if c > 100}}


def test_zero_shot_split_counts_and_contiguous_labels(fake_cub200_root):
    expected = expected_classes(fake_cub200_root)
    train, test = build(fake_cub200_root, "train"), build(fake_cub200_root, "test")
    assert_class_disjoint(train, test, "cub200")
    for split, ds in (("train", train), ("test", test)):
        assert {int(c) for c in ds.classes} == expected[split]
        assert len(ds) == 3 * len(expected[split])
        assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
        for path, label in zip(ds.paths, ds.labels, strict=True):
            # the class folder is "<id:03d>.<name>": the label must point back at that id
            assert int(path.parent.name.split(".")[0]) == int(ds.classes[label])
        assert all(
            name.startswith(f"{int(c):03d}.")
            for c, name in zip(ds.classes, ds.class_names, strict=True)
        )


def test_items_are_transformed_tensors(fake_cub200_root):
    ds = build(fake_cub200_root, "test")
    image, label = ds[0]
    assert image.shape == (3, 227, 227) and image.dtype == torch.float32
    assert label == ds.labels[0]
    assert torch.equal(ds[0][0], image)  # test transform is deterministic
    raw = build(fake_cub200_root, "test", transform=lambda img: img.size)
    assert raw[0][0] == fakes.IMAGE_SIZE
    thumb = ds.thumbnail(1, size=32)
    assert thumb.shape == (32, 32, 3) and thumb.dtype.name == "uint8"


def test_missing_root_names_it_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        build(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "download=True" in message and cub200.URL in message
    assert "\n" not in message


def test_wrong_layout_names_the_expected_folder(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetNotFoundError, match="CUB_200_2011"):
        build(tmp_path)


def test_root_pointing_inside_the_dataset_folder_says_use_the_parent(fake_cub200_root):
    with pytest.raises(DatasetNotFoundError, match="parent"):
        build(fake_cub200_root / "CUB_200_2011")


@pytest.mark.parametrize("name", ["images.txt", "image_class_labels.txt", "classes.txt"])
def test_missing_annotation_file_is_named(fake_cub200_root, name):
    path = fake_cub200_root / "CUB_200_2011" / name
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=str(path)):
        build(fake_cub200_root)


def test_missing_image_folder_is_named(fake_cub200_root):
    shutil.rmtree(fake_cub200_root / "CUB_200_2011" / "images")
    with pytest.raises(DatasetNotFoundError, match="images"):
        build(fake_cub200_root)


def test_missing_listed_images_are_reported_by_path(fake_cub200_root):
    ds = build(fake_cub200_root, "train")
    ds.paths[1].unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        build(fake_cub200_root, "train")
    assert str(ds.paths[1]) in str(info.value) and "1 of 12" in str(info.value)


def test_truncated_annotation_line_names_the_file(fake_cub200_root):
    path = fake_cub200_root / "CUB_200_2011" / "images.txt"
    path.write_text(path.read_text() + "999\n")
    with pytest.raises(DatasetNotFoundError, match="line"):
        build(fake_cub200_root)


def test_corrupt_image_raises_a_user_error_naming_it(fake_cub200_root):
    ds = build(fake_cub200_root, "test")
    ds.paths[2].write_bytes(b"this is not a jpeg")
    with pytest.raises(UserError, match=str(ds.paths[2])):
        ds[2]


def test_download_fetches_the_official_archive_once(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, download_root, filename, md5))
        fakes.make_cub200_tree(Path(download_root))

    monkeypatch.setattr(cub200, "download_and_extract_archive", fake_download)
    root = tmp_path / "data"
    assert not cub200.locate(root, cub200.SPEC.make_config()).found
    ds = build(root, "train", download=True)
    assert len(ds) > 0
    assert calls == [
        (cub200.URL, str(root), "CUB_200_2011.tgz", "97eceeb196236b17998738112f37df78")
    ]
    build(root, "test", download=True)
    assert len(calls) == 1  # idempotent: already present
    assert cub200.locate(root, cub200.SPEC.make_config()).found


def test_registered_spec():
    spec = DATASETS.get("cub200")
    assert spec is cub200.SPEC
    assert spec.input_kind == "photo" and spec.channels == 3 and spec.recall_ks == (1, 2, 4, 8)
