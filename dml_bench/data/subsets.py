"""Class-level subsets: hold out part of the train classes for validation.

Model selection and early stopping must never look at the test classes (zero-shot protocol), so
``--val-classes FRACTION`` moves a seeded fraction of the *train* classes into a validation split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dml_bench.data.base import DMLDataset, HasThumbnails
from dml_bench.errors import ConfigError


class ClassSubset(torch.utils.data.Dataset):
    """The items of ``dataset`` whose class is in ``keep``, labels remapped to ``0..C-1``."""

    def __init__(self, dataset: DMLDataset, keep_labels: Sequence[int]) -> None:
        keep = sorted(set(keep_labels))
        remap = {old: new for new, old in enumerate(keep)}
        self.dataset = dataset
        self.indices = [i for i, y in enumerate(dataset.labels) if y in remap]
        self.labels = [remap[dataset.labels[i]] for i in self.indices]
        self.classes = [dataset.classes[old] for old in keep]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, _ = self.dataset[self.indices[index]]
        return image, self.labels[index]

    def thumbnail(self, index: int, size: int = 64) -> np.ndarray:
        if not isinstance(self.dataset, HasThumbnails):
            raise TypeError(f"{type(self.dataset).__name__} has no thumbnails")
        return self.dataset.thumbnail(self.indices[index], size)


def split_train_classes(
    dataset: DMLDataset, fraction: float, seed: int
) -> tuple[ClassSubset, ClassSubset]:
    """Split ``dataset`` by class into (train, validation), ``fraction`` of classes to validation."""
    n_classes = len(dataset.classes)
    n_val = int(round(fraction * n_classes))
    if n_val < 2 or n_classes - n_val < 2:
        raise ConfigError(
            f"--val-classes {fraction} leaves {n_classes - n_val} train and {n_val} validation "
            f"classes out of {n_classes}; both need at least 2. Use a fraction between "
            f"{2 / n_classes:.3f} and {1 - 2 / n_classes:.3f}, or 0 for no validation split."
        )
    order = np.random.RandomState(seed).permutation(n_classes)
    val = order[:n_val].tolist()
    train = order[n_val:].tolist()
    return ClassSubset(dataset, train), ClassSubset(dataset, val)
