"""Shared helpers for image-file datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dml_bench.data import images
from dml_bench.errors import DatasetNotFoundError


def test_natural_key_orders_numbers_numerically():
    names = ["c10", "c2", "c1", "b", "10", "9"]
    assert sorted(names, key=images.natural_key) == ["9", "10", "b", "c1", "c2", "c10"]


@pytest.mark.parametrize("n", [2, 5, 20, 101])
def test_seeded_class_split_is_a_disjoint_partition(n):
    classes = [f"k{i}" for i in range(n)]
    train, test = images.seeded_class_split(classes, seed=7, test_fraction=0.5)
    assert set(train).isdisjoint(test) and train and test
    assert sorted(train + test) == sorted(classes)
    assert len(test) == max(1, min(n - 1, round(n * 0.5)))
    assert train == [c for c in classes if c in set(train)]  # input order kept


def test_square_thumbnail_crops_the_centre():
    array = np.zeros((40, 100, 3), dtype=np.uint8)
    array[:, 30:70] = 200  # a centred bright band as wide as the height
    thumb = images.square_thumbnail(Image.fromarray(array), 20)
    assert thumb.shape == (20, 20, 3) and thumb.dtype == np.uint8
    assert thumb[:, 2:-2].min() == 200


def test_read_table_rejects_short_lines_and_empty_files(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("1 x\n\n2 y\n")
    assert images.read_table(good, 2, "T") == [["1", "x"], ["2", "y"]]
    short = tmp_path / "b.txt"
    short.write_text("1 x\n2\n")
    with pytest.raises(DatasetNotFoundError, match="line 2"):
        images.read_table(short, 2, "T")
    empty = tmp_path / "c.txt"
    empty.write_text("header only\n")
    with pytest.raises(DatasetNotFoundError, match="no entries"):
        images.read_table(empty, 2, "T", header=True)


def test_check_files_exist_lists_the_first_few_and_counts(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(8)]
    paths[0].write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError) as info:
        images.check_files_exist(paths, "T")
    message = str(info.value)
    assert "7 of 8" in message and str(paths[1]) in message and "2 more" in message
    assert str(paths[7]) not in message


def test_load_rgb_converts_and_names_broken_files(tmp_path):
    grey = tmp_path / "g.png"
    Image.new("L", (4, 3), 9).save(grey)
    assert images.load_rgb(grey).mode == "RGB"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    with pytest.raises(DatasetNotFoundError, match=str(broken)):
        images.load_rgb(broken)
