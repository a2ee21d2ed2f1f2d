"""The fake dataset trees: the official layouts, read back by the real builders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dml_bench.data import DATASETS, DataRequest, fakes


def test_spread_ids_fill_both_halves() -> None:
    ids = fakes.spread_ids(8, 200)
    assert ids == sorted(set(ids)) and ids[0] == 1 and ids[-1] <= 200
    assert sum(i <= 100 for i in ids) == 4
    with pytest.raises(ValueError):
        fakes.spread_ids(1, 200)
    with pytest.raises(ValueError):
        fakes.spread_ids(201, 200)


def test_images_are_coloured_by_class_and_item(tmp_path: Path) -> None:
    a = np.asarray(Image.open(fakes.write_image(tmp_path / "a.png", 0, 0)))
    b = np.asarray(Image.open(fakes.write_image(tmp_path / "b.png", 1, 0)))
    c = np.asarray(Image.open(fakes.write_image(tmp_path / "c.png", 0, 1)))
    assert a.shape == (fakes.IMAGE_SIZE[1], fakes.IMAGE_SIZE[0], 3)
    assert (a == a[0, 0]).all()  # solid colour
    assert not np.array_equal(a[0, 0], b[0, 0]) and not np.array_equal(a[0, 0], c[0, 0])


@pytest.mark.parametrize(
    ("name", "make", "config"),
    [
        ("cub200", fakes.make_cub200_tree, {}),
        ("cars196", fakes.make_cars196_tree, {}),
        ("sop", fakes.make_sop_tree, {}),
        ("folder", fakes.make_folder_tree, "path"),
        ("csv", fakes.make_csv_tree, "path"),
    ],
)
def test_every_fake_tree_builds_a_class_disjoint_dataset(
    tmp_path: Path, name: str, make: object, config: object
) -> None:
    made = make(tmp_path / name, n_classes=6, per_class=3)  # type: ignore[operator]
    spec = DATASETS.get(name)
    values = {"path": str(made)} if config == "path" else {}
    root = tmp_path / name if config == "path" else made
    splits = [
        spec.build(DataRequest(root, split), spec.make_config(values))  # type: ignore[arg-type]
        for split in ("train", "test")
    ]
    assert spec.locate(root, spec.make_config(values)).found
    classes = [set(s.classes) for s in splits]
    assert not classes[0] & classes[1]
    assert sum(len(c) for c in classes) == 6
    assert sum(len(s) for s in splits) == 18
    image, label = splits[0][0]
    assert label == splits[0].labels[0] and tuple(image.shape[0:1]) == (3,)
