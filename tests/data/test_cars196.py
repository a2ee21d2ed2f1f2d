"""Cars196 on a fake tree in the layout of car_ims.tgz + cars_annos.mat."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scipy.io import loadmat

from dml_bench.data import DATASETS, cars196, fakes
from dml_bench.data.base import DataRequest, Split, assert_class_disjoint
from dml_bench.errors import DatasetNotFoundError, UserError


def build(root: Path, split: Split = "train", **kwargs):
    request = DataRequest(root=root, split=split, **kwargs)
    return cars196.build(request, cars196.SPEC.make_config())


def expected_items(root: Path) -> dict[str, dict[Path, int]]:
    """Independent reading of the .mat (no squeeze): image path -> class id, per split."""
    annotations = loadmat(str(root / "cars196" / "cars_annos.mat"))["annotations"][0]
    items: dict[str, dict[Path, int]] = {"train": {}, "test": {}}
    for record in annotations:
        path = root / "cars196" / str(record["relative_im_path"][0])
        cls = int(record["class"][0][0])
        items["train" if cls <= 98 else "test"][path] = cls
    return items


def test_zero_shot_split_counts_and_contiguous_labels(fake_cars196_root):
    expected = expected_items(fake_cars196_root)
    train, test = build(fake_cars196_root, "train"), build(fake_cars196_root, "test")
    assert_class_disjoint(train, test, "cars196")
    for split, ds in (("train", train), ("test", test)):
        assert len(ds) == len(expected[split]) > 0
        assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
        for path, label in zip(ds.paths, ds.labels, strict=True):
            assert int(ds.classes[label]) == expected[split][path]
        assert ds.class_names == [f"Make Model {c} 2012" for c in ds.classes]
    assert max(int(c) for c in train.classes) <= 98 < min(int(c) for c in test.classes)


def test_items_are_transformed_tensors(fake_cars196_root):
    ds = build(fake_cars196_root, "train")
    image, label = ds[0]
    assert image.shape == (3, 227, 227) and image.dtype == torch.float32
    assert label == ds.labels[0]
    assert ds.thumbnail(0).shape == (64, 64, 3)


def test_missing_root_names_it_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        build(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "download=True" in str(info.value) and cars196.IMAGES_URL in str(info.value)


def test_wrong_layout_names_the_expected_folder(tmp_path):
    (tmp_path / "car_ims").mkdir()
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "cars196")):
        build(tmp_path)


def test_missing_annotation_file_is_named(fake_cars196_root):
    path = fake_cars196_root / "cars196" / "cars_annos.mat"
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=str(path)):
        build(fake_cars196_root)


def test_corrupt_annotation_file_is_named(fake_cars196_root):
    path = fake_cars196_root / "cars196" / "cars_annos.mat"
    path.write_bytes(b"garbage" * 20)
    with pytest.raises(DatasetNotFoundError, match=str(path)):
        build(fake_cars196_root)


def test_annotation_file_of_another_release_is_rejected(fake_cars196_root):
    from scipy.io import savemat

    path = fake_cars196_root / "cars196" / "cars_annos.mat"
    savemat(str(path), {"annotations": {"fname": "00001.jpg", "class": 1}})
    with pytest.raises(DatasetNotFoundError, match="relative_im_path"):
        build(fake_cars196_root)


def test_missing_listed_image_is_reported_by_path(fake_cars196_root):
    missing = fake_cars196_root / "cars196" / "car_ims" / "000002.jpg"
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match=str(missing)):
        build(fake_cars196_root, "train")


def test_corrupt_image_raises_a_user_error_naming_it(fake_cars196_root):
    ds = build(fake_cars196_root, "test")
    ds.paths[0].write_bytes(b"")
    with pytest.raises(UserError, match=str(ds.paths[0])):
        ds[0]


def test_download_fetches_images_and_annotations_once(tmp_path, monkeypatch):
    calls = []

    def fake_archive(url, download_root, filename=None, md5=None, **kwargs):
        calls.append(("archive", url, download_root, filename, md5))
        fakes.make_cars196_tree(Path(download_root).parent)

    def fake_url(url, root, filename=None, md5=None, **kwargs):
        calls.append(("file", url, root, filename, md5))

    monkeypatch.setattr(cars196, "download_and_extract_archive", fake_archive)
    monkeypatch.setattr(cars196, "download_url", fake_url)
    root = tmp_path / "data"
    assert len(build(root, "test", download=True)) > 0
    base = str(root / "cars196")
    assert calls == [
        ("archive", cars196.IMAGES_URL, base, "car_ims.tgz", "d5c8f0aa497503f355e17dc7886c3f14"),
        (
            "file",
            cars196.ANNOTATIONS_URL,
            base,
            "cars_annos.mat",
            "b407c6086d669747186bd1d764ff9dbc",
        ),
    ]
    build(root, "train", download=True)
    assert len(calls) == 2  # idempotent


def test_registered_spec():
    spec = DATASETS.get("cars196")
    assert spec is cars196.SPEC
    assert spec.input_kind == "photo" and spec.recall_ks == (1, 2, 4, 8)
