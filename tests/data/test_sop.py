"""Stanford Online Products on a fake tree in the official layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from dml_bench.data import DATASETS, fakes, sop
from dml_bench.data.base import DataRequest, Split, assert_class_disjoint
from dml_bench.errors import DatasetNotFoundError, UserError


def build(root: Path, split: Split = "train", **kwargs):
    return sop.build(DataRequest(root=root, split=split, **kwargs), sop.SPEC.make_config())


def test_split_files_define_the_splits(fake_sop_root):
    base = fake_sop_root / "Stanford_Online_Products"
    for split, name in (("train", "Ebay_train.txt"), ("test", "Ebay_test.txt")):
        table = pd.read_csv(base / name, sep=" ")
        ds = build(fake_sop_root, split)
        assert len(ds) == len(table)
        assert [int(c) for c in ds.classes] == sorted(set(table["class_id"]))
        assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
        got = {
            (str(p.relative_to(base)), int(ds.classes[y]))
            for p, y in zip(ds.paths, ds.labels, strict=True)
        }
        assert got == set(zip(table["path"], table["class_id"], strict=True))
    assert_class_disjoint(build(fake_sop_root, "train"), build(fake_sop_root, "test"), "sop")


def test_items_are_transformed_tensors(fake_sop_root):
    image, label = build(fake_sop_root, "test")[3]
    assert image.shape == (3, 227, 227) and image.dtype == torch.float32
    assert label == 1


def test_classes_sort_numerically(tmp_path):
    root = fakes.make_sop_tree(tmp_path, n_classes=24, per_class=2)
    assert build(root, "train").classes == [str(i) for i in range(1, 13)]


def test_missing_root_names_it_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        build(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value) and sop.URL in str(info.value)


def test_wrong_layout_names_the_expected_folder(tmp_path):
    (tmp_path / "bicycle_final").mkdir()
    with pytest.raises(DatasetNotFoundError, match="Stanford_Online_Products"):
        build(tmp_path)


@pytest.mark.parametrize("name", ["Ebay_train.txt", "Ebay_test.txt"])
def test_missing_split_file_is_named(fake_sop_root, name):
    path = fake_sop_root / "Stanford_Online_Products" / name
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=str(path)):
        build(fake_sop_root, "train")


def test_overlapping_split_files_break_the_protocol(fake_sop_root):
    base = fake_sop_root / "Stanford_Online_Products"
    train = (base / "Ebay_train.txt").read_text().splitlines()
    test_lines = (base / "Ebay_test.txt").read_text().splitlines()
    (base / "Ebay_test.txt").write_text("\n".join([*test_lines, train[1]]) + "\n")
    with pytest.raises(DatasetNotFoundError, match="both"):
        build(fake_sop_root, "test")


def test_missing_listed_image_is_reported_by_path(fake_sop_root):
    ds = build(fake_sop_root, "test")
    ds.paths[-1].unlink()
    with pytest.raises(DatasetNotFoundError, match=str(ds.paths[-1])):
        build(fake_sop_root, "test")


def test_corrupt_image_raises_a_user_error_naming_it(fake_sop_root):
    ds = build(fake_sop_root, "train")
    ds.paths[0].write_bytes(b"\xff\xd8 truncated jpeg")
    with pytest.raises(UserError, match=str(ds.paths[0])):
        ds[0]


def test_download_fetches_the_official_archive_once(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, download_root, filename, md5))
        fakes.make_sop_tree(Path(download_root))

    monkeypatch.setattr(sop, "download_and_extract_archive", fake_download)
    root = tmp_path / "data"
    assert len(build(root, "train", download=True)) > 0
    build(root, "test", download=True)
    assert calls == [
        (sop.URL, str(root), "Stanford_Online_Products.zip", "7f73d41a2f44250d4779881525aea32e")
    ]


def test_registered_spec():
    spec = DATASETS.get("sop")
    assert spec is sop.SPEC
    assert spec.recall_ks == (1, 10, 100, 1000)
