"""Class-level validation subsets: remapped labels, disjoint classes, seeded choice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from dml_bench.data.base import HasThumbnails
from dml_bench.data.subsets import ClassSubset, split_train_classes
from dml_bench.errors import ConfigError


class Items:
    """``n_classes`` classes named ``c0, c1, ...``; item i's image is the scalar tensor i."""

    def __init__(self, item_labels: Sequence[int], n_classes: int) -> None:
        self.labels = list(item_labels)
        self.classes = [f"c{k}" for k in range(n_classes)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.tensor(float(index)), self.labels[index]


class WithThumbnails(Items):
    def thumbnail(self, index: int, size: int = 64) -> np.ndarray:
        return np.full((size, size, 3), index, dtype=np.uint8)


def test_subset_keeps_the_items_of_its_classes_with_contiguous_labels() -> None:
    base = Items([0, 3, 1, 3, 2, 0, 4], n_classes=5)
    subset = ClassSubset(base, keep_labels=[3, 0, 3])
    assert subset.classes == ["c0", "c3"]
    assert subset.indices == [0, 1, 3, 5] and subset.labels == [0, 1, 1, 0]
    assert len(subset) == 4
    for i, index in enumerate(subset.indices):
        image, label = subset[i]
        assert float(image) == index and label == subset.labels[i]
        assert subset.classes[label] == base.classes[base.labels[index]]


def test_thumbnails_come_from_the_wrapped_dataset_when_it_has_them() -> None:
    subset = ClassSubset(WithThumbnails([0, 1, 1, 0], 2), [1])
    assert isinstance(subset, HasThumbnails)
    assert subset.thumbnail(1, size=4)[0, 0, 0] == 2  # subset item 1 is base item 2
    with pytest.raises(TypeError, match="no thumbnails"):
        ClassSubset(Items([0, 1], 2), [1]).thumbnail(0)


def test_split_is_disjoint_covers_every_class_and_follows_the_fraction() -> None:
    labels = [k % 10 for k in range(50)]
    base = Items(labels, n_classes=10)
    train, val = split_train_classes(base, 0.3, seed=4)
    assert len(val.classes) == 3 and len(train.classes) == 7
    assert not set(train.classes) & set(val.classes)
    assert set(train.classes) | set(val.classes) == set(base.classes)
    assert sorted(train.indices + val.indices) == list(range(50))
    again_train, again_val = split_train_classes(base, 0.3, seed=4)
    assert again_val.classes == val.classes and again_train.classes == train.classes
    choices = {tuple(split_train_classes(base, 0.3, seed=s)[1].classes) for s in range(6)}
    assert len(choices) > 1  # the seed decides


@pytest.mark.parametrize("fraction", [0.05, 0.95])
def test_a_split_leaving_fewer_than_two_classes_is_refused(fraction: float) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        split_train_classes(Items(list(range(10)), 10), fraction, seed=0)
