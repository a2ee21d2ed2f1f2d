"""The embedded Hershey dataset: catalogue, rendering, split, cache and config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from HersheyFonts import HersheyFonts

from dml_bench.data import DATASETS, hershey
from dml_bench.data.base import DataRequest, Split, assert_class_disjoint
from dml_bench.errors import ConfigError

SMALL = {"max_classes": 8, "images_per_class": 3, "image_size": 16}


def make(values: dict | None = None) -> hershey.HersheyConfig:
    return hershey.SPEC.make_config({**SMALL, **(values or {})})


def build(root: Path, split: Split = "train", **values) -> hershey.HersheyDataset:
    return hershey.build(DataRequest(root=root, split=split), make(values))


def segment_set(strokes) -> frozenset:
    """Independent shape identity: the set of undirected segments, translated to the origin."""
    points = np.concatenate([np.asarray(s, dtype=float).reshape(-1, 2) for s in strokes])
    low = points.min(axis=0)
    segments: set[frozenset] = set()
    for stroke in strokes:
        moved = [tuple(np.round(np.asarray(p, dtype=float) - low, 6)) for p in stroke]
        segments.update(frozenset((a, b)) for a, b in zip(moved, moved[1:], strict=False))
    return frozenset(segments)


@pytest.fixture(scope="module")
def catalogue() -> list[hershey.GlyphClass]:
    return hershey.glyph_catalogue()


@pytest.fixture(scope="module")
def raw_glyph_shapes() -> list[frozenset]:
    fonts = HersheyFonts()
    shapes = []
    for font in fonts.default_font_names:
        fonts.load_default_font(font)
        for glyph in fonts.all_glyphs.values():
            if any(len(s) >= 2 for s in glyph.strokes):
                shapes.append(segment_set(glyph.strokes))
    return shapes


def test_catalogue_has_about_1200_classes(catalogue):
    assert 1100 <= len(catalogue) <= 1300
    ids = [g.class_id for g in catalogue]
    assert len(set(ids)) == len(ids)
    assert all(":" in i for i in ids)


def test_limit_gives_a_prefix_of_the_catalogue(catalogue):
    assert [g.class_id for g in hershey.glyph_catalogue(limit=120)] == [
        g.class_id for g in catalogue[:120]
    ]


def test_catalogue_has_no_two_identical_shapes(catalogue):
    keys = [segment_set(g.strokes) for g in catalogue]
    assert len(set(keys)) == len(keys)


def test_dedup_removes_duplicates_and_keeps_every_distinct_shape(catalogue, raw_glyph_shapes):
    assert len(raw_glyph_shapes) > len(catalogue)  # fonts do share designs
    assert set(raw_glyph_shapes) == {segment_set(g.strokes) for g in catalogue}


def test_catalogue_drops_empty_glyphs(catalogue):
    assert all(any(len(s) >= 2 for s in g.strokes) for g in catalogue)
    assert not any(g.class_id.endswith(":U+0020") for g in catalogue)


def test_split_is_class_disjoint_contiguous_and_complete(tmp_path):
    train, test = build(tmp_path, "train"), build(tmp_path, "test")
    assert_class_disjoint(train, test, "hershey")
    assert len(train.classes) > 0 and len(test.classes) > 0
    assert len(train.classes) + len(test.classes) == SMALL["max_classes"]
    for ds in (train, test):
        assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
        assert len(ds) == len(ds.classes) * SMALL["images_per_class"]
        assert ds.images.dtype == torch.uint8
        assert ds.images.shape == (len(ds), 1, 16, 16)
        assert torch.equal(ds.label_tensor, torch.tensor(ds.labels))
    first = hershey.glyph_catalogue(limit=SMALL["max_classes"])
    assert set(train.classes) | set(test.classes) == {g.class_id for g in first}


def test_split_depends_on_seed():
    ids = [f"c{i}" for i in range(20)]
    splits = {tuple(hershey.split_classes(ids, seed)[1]) for seed in range(6)}
    assert len(splits) > 1
    assert hershey.split_classes(ids, 4) == hershey.split_classes(ids, 4)


def test_same_seed_gives_the_same_bytes(tmp_path):
    a = build(tmp_path / "a", "train", seed=3)
    b = build(tmp_path / "b", "train", seed=3)
    assert a.classes == b.classes
    assert torch.equal(a.images, b.images)


def test_different_seeds_give_different_images(tmp_path):
    a = hershey.load_or_generate(tmp_path, make({"seed": 0}))
    b = hershey.load_or_generate(tmp_path, make({"seed": 1}))
    assert a.class_ids == b.class_ids
    assert not np.array_equal(a.images, b.images)


def test_jitter_makes_instances_of_a_class_differ(tmp_path):
    data = hershey.load_or_generate(tmp_path, make({"images_per_class": 4}))
    clean = hershey.load_or_generate(tmp_path, make({"images_per_class": 4, "jitter": 0.0}))
    for c in range(SMALL["max_classes"]):
        jittered = data.images[data.class_index == c]
        assert len({img.tobytes() for img in jittered}) == 4
        plain = clean.images[clean.class_index == c]
        assert len({img.tobytes() for img in plain}) == 1
        assert plain[0].max() > 0  # something was drawn


def test_a_class_draws_the_same_images_whatever_max_classes(tmp_path):
    small = hershey.load_or_generate(tmp_path, make({"max_classes": 4}))
    large = hershey.load_or_generate(tmp_path, make({"max_classes": 6}))
    assert large.class_ids[:4] == small.class_ids
    assert np.array_equal(large.images[: len(small.images)], small.images)


def test_second_build_reads_the_cache_without_rendering(tmp_path, monkeypatch):
    config = make()
    assert not hershey.cache_path(tmp_path, config).exists()
    assert hershey.locate(tmp_path, config).found  # generated offline: always available
    first = hershey.build(DataRequest(tmp_path, "train"), config)
    assert hershey.cache_path(tmp_path, config).is_file()
    assert "cached" in hershey.locate(tmp_path, config).detail

    def fail(*args, **kwargs):
        raise AssertionError("rendered again although a cache exists")

    monkeypatch.setattr(hershey, "generate_images", fail)
    second = hershey.build(DataRequest(tmp_path, "train"), config)
    assert torch.equal(first.images, second.images)
    assert not list((tmp_path / "hershey").glob(".*"))  # atomic write left no temp file


def test_corrupt_cache_is_rendered_again(tmp_path):
    config = make()
    path = hershey.cache_path(tmp_path, config)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz file")
    ds = hershey.build(DataRequest(tmp_path, "test"), config)
    assert len(ds) > 0
    assert np.load(path)["images"].shape[1:] == (16, 16)


def test_cache_key_depends_on_every_field(tmp_path):
    base = make()
    variants = [
        make({"image_size": 24}),
        make({"images_per_class": 4}),
        make({"max_classes": 9}),
        make({"seed": 1}),
        make({"jitter": 0.5}),
    ]
    paths = {hershey.cache_path(tmp_path, c) for c in [base, *variants]}
    assert len(paths) == 1 + len(variants)


def test_getitem_values_transform_and_thumbnail(tmp_path):
    ds = build(tmp_path)
    image, label = ds[0]
    assert image.dtype == torch.float32 and image.shape == (1, 16, 16)
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert torch.allclose(image, ds.images[0].float() / 127.5 - 1.0)
    assert label == ds.labels[0]
    flipped = hershey.build(DataRequest(tmp_path, "train", transform=lambda x: x.flip(-1)), make())
    assert torch.equal(flipped[0][0], image.flip(-1))
    thumb = ds.thumbnail(0, size=40)
    assert thumb.dtype == np.uint8 and thumb.shape == (40, 40, 3)
    assert thumb.max() > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 4),
        ("image_size", 1000),
        ("images_per_class", 1),
        ("max_classes", 3),
        ("seed", -1),
        ("jitter", -0.1),
        ("jitter", 10.0),
    ],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        hershey.SPEC.make_config({field: value})


def test_max_classes_above_the_catalogue_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="max_classes"):
        build(tmp_path, max_classes=100_000)


def test_unknown_split_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="split"):
        hershey.build(DataRequest(tmp_path, "val"), make())


def test_registered_as_the_tensor_default():
    spec = DATASETS.get("hershey")
    assert spec is hershey.SPEC
    assert spec.input_kind == "tensor" and spec.channels == 1
    assert spec.recall_ks == (1, 2, 4, 8)
