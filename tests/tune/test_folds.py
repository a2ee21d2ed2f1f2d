"""Validation folds: a seeded partition of the train classes that never holds a test class."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dml_bench.errors import ConfigError
from dml_bench.train.config import RunConfig
from dml_bench.train.plan import ExperimentRequest, plan_runs
from dml_bench.tune.folds import assert_no_test_classes, fold_data, fold_parts, load_fold_source


@pytest.mark.parametrize(("n", "k"), [(12, 2), (13, 4), (600, 4), (10, 5)])
def test_folds_partition_the_classes_evenly(n: int, k: int) -> None:
    parts = fold_parts(n, k, seed=3)
    flat = [c for part in parts for c in part]
    assert sorted(flat) == list(range(n))  # every class in exactly one part
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and len(parts) == k
    assert fold_parts(n, k, seed=3) == parts  # seeded
    assert fold_parts(n, k, seed=4) != parts


def test_too_few_classes_for_the_folds_is_a_user_error() -> None:
    with pytest.raises(ConfigError, match=r"--folds 7 needs at least 14 train classes"):
        fold_parts(12, 7, seed=0)


def tiny_config(data_root: Path) -> RunConfig:
    request = ExperimentRequest(
        methods=("proxy_nca",),
        run_params={"data_root": str(data_root), "batch_size": 16, "embedding_size": 8},
        dataset_params={"max_classes": 24, "images_per_class": 4, "image_size": 16},
    )
    return plan_runs(request)[0]


def test_fold_data_trains_and_validates_on_train_classes_only(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    source = load_fold_source(config, folds=3)
    names = [str(c) for c in source.train.classes]
    seen_val: list[str] = []
    for fold in range(3):
        data = fold_data(source, 3, fold, seed=0)
        train, val = {str(c) for c in data.train.classes}, {str(c) for c in data.test.classes}
        assert not train & val
        assert train | val == set(names)
        assert not (train | val) & source.test_classes
        assert data.val is None
        # the labels the loop sees are 0..C-1 of each part
        assert sorted(set(data.train.labels)) == list(range(len(train)))
        seen_val += sorted(val)
    assert sorted(seen_val) == sorted(names)  # each class validates in exactly one fold


def test_a_fold_with_a_test_class_is_stopped(tmp_path: Path) -> None:
    source = load_fold_source(tiny_config(tmp_path), folds=3)
    data = fold_data(source, 3, 0, seed=0)
    leaked = source.test_classes | {str(data.test.classes[0])}
    with pytest.raises(AssertionError, match="test classes"):
        assert_no_test_classes(data, frozenset(leaked))
    with pytest.raises(AssertionError, match="second evaluation split"):
        assert_no_test_classes(dataclasses.replace(data, val=data.test), source.test_classes)
