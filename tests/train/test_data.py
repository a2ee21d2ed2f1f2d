"""The data of one run: splits, trunk choice, seeded augmentation, the diagnostic batch."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dml_bench.data import DATASETS
from dml_bench.errors import UnknownNameError
from dml_bench.train import plan_runs
from dml_bench.train.config import RunConfig
from dml_bench.train.data import (
    BatchedItems,
    SeededItems,
    collate,
    diagnostic_indices,
    load_run_data,
    resolve_trunk,
)
from tests.train.conftest import tiny_request


def test_auto_trunk_follows_the_kind_of_input() -> None:
    hershey = DATASETS.get("hershey")
    assert resolve_trunk(RunConfig(), hershey) == "small_cnn"
    assert resolve_trunk(RunConfig(), DATASETS.get("cub200")) == "googlenet"
    assert resolve_trunk(RunConfig(trunk="resnet50"), hershey) == "resnet50"
    with pytest.raises(UnknownNameError, match="nosuch"):
        resolve_trunk(RunConfig(trunk="nosuch"), hershey)


def test_splits_are_class_disjoint_and_validation_comes_from_train(data_root: Path) -> None:
    config = plan_runs(tiny_request(data_root, val_classes=0.25))[0]
    data = load_run_data(config)
    train, test = set(data.train.classes), set(data.test.classes)
    assert data.val is not None
    val = set(data.val.classes)
    assert not train & test and not val & test and not train & val
    assert len(train) + len(val) == len(test) == 12  # 24 classes, half for training
    assert data.num_train_classes == len(train) == 9


class _Noisy(torch.utils.data.Dataset):
    """An item is random noise: the seeding decides it entirely."""

    transform = True

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.rand(2) + random.random(), index


def test_seeded_items_depend_on_their_seed_only_and_leave_the_global_rngs_alone() -> None:
    items = SeededItems(_Noisy())  # type: ignore[arg-type]
    torch.manual_seed(0)
    random.seed(0)
    expected = (torch.rand(1), random.random())
    torch.manual_seed(0)
    random.seed(0)
    a = items.__getitems__([(0, 11), (1, 12)])
    assert (torch.rand(1), random.random()) == expected  # global streams untouched
    b = items.__getitems__([(3, 12), (2, 11)])
    assert torch.equal(a[0][0], b[1][0]) and torch.equal(a[1][0], b[0][0])
    assert not torch.equal(a[0][0], a[1][0])
    assert len(items) == 4 and items[(0, 11)][1] == 0


def test_batched_items_and_collate() -> None:
    plain = BatchedItems(_Noisy())  # type: ignore[arg-type]
    batch = collate(plain.__getitems__([0, 1, 2]))
    assert batch[0].shape == (3, 2) and batch[1].tolist() == [0, 1, 2]
    stacked = (torch.zeros(2, 2), torch.tensor([1, 2]))
    assert collate(stacked) is stacked  # already stacked by get_batch


def test_diagnostic_batch_is_seeded_and_takes_classes_with_positives() -> None:
    labels = np.array([0] * 5 + [1] * 1 + [2] * 3 + [3] * 6)
    chosen = diagnostic_indices(labels, classes=2, per_class=4, seed=0)
    assert chosen == diagnostic_indices(labels, classes=2, per_class=4, seed=0)
    picked = labels[chosen]
    assert 1 not in picked  # one image: no positive
    counts = {int(c): int((picked == c).sum()) for c in set(picked.tolist())}
    assert len(counts) == 2 and all(
        n == min(4, int((labels == c).sum())) for c, n in counts.items()
    )
    assert len(set(chosen)) == len(chosen)
    everything = diagnostic_indices(labels, classes=10, per_class=10, seed=1)
    assert sorted(everything) == [i for i, y in enumerate(labels) if y != 1]
    assert diagnostic_indices(np.array([0, 1, 2]), 4, 4, 0) == []
