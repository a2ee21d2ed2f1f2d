"""The data of one run: train / test (/ validation) splits, transforms, the diagnostic batch."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml_bench.data import (
    DATASETS,
    BatchedDataset,
    DataRequest,
    DatasetSpec,
    DMLDataset,
    assert_class_disjoint,
    default_data_root,
)
from dml_bench.data.prepared import PreparedCaches
from dml_bench.data.subsets import split_train_classes
from dml_bench.models.trunks import IMAGENET_MEAN_STD, TRUNKS
from dml_bench.train.config import RunConfig

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    spec: DatasetSpec[Any]
    train: DMLDataset
    test: DMLDataset
    val: DMLDataset | None
    prepared: list[str] = field(default_factory=list)  # the prepared caches the splits read
    # Metrics of the untrained network per (weights, split, evaluation settings), shared by the
    # runs that train on this data (:func:`dml_bench.train.evaluation.untrained_key`).
    untrained_metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def num_train_classes(self) -> int:
        return len(self.train.classes)


def resolve_trunk(config: RunConfig, spec: DatasetSpec[Any]) -> str:
    if config.trunk != "auto":
        TRUNKS.get(config.trunk)  # validates the name
        return config.trunk
    return "small_cnn" if spec.input_kind == "tensor" else "googlenet"


def _transforms(
    config: RunConfig, spec: DatasetSpec[Any], train: bool
) -> Callable[[Any], Any] | None:
    if spec.input_kind == "tensor":
        return None
    from dml_bench.data.transforms import photo_transforms

    trunk = TRUNKS.get(resolve_trunk(config, spec))
    mean, std = trunk.weights_mean_std or IMAGENET_MEAN_STD
    return photo_transforms(train=train, resize=config.resize, crop=config.crop, mean=mean, std=std)


def data_root(config: RunConfig) -> Path:
    return Path(config.data_root).expanduser() if config.data_root else default_data_root()


def load_run_data(config: RunConfig) -> RunData:
    """Build the splits of ``config.dataset`` and check the zero-shot protocol."""
    spec = DATASETS.get(config.dataset)
    root = data_root(config)

    prepared: list[str] = []

    def build(split: str, train: bool) -> DMLDataset:
        caches = None
        if config.prepared and spec.input_kind == "photo":
            caches = PreparedCaches(root, spec.name, split, config.resize)
        transform = _transforms(config, spec, train)
        request = DataRequest(root, split, transform, config.download, caches)  # type: ignore[arg-type]
        dataset = spec.build(request, config.dataset_config)
        for folder in caches.served if caches is not None else []:
            if str(folder) not in prepared:
                logger.info("%s/%s: reading the prepared cache %s", spec.name, split, folder)
                prepared.append(str(folder))
        return dataset

    train, test = build("train", True), build("test", False)
    assert_class_disjoint(train, test, config.dataset)
    val: DMLDataset | None = None
    if config.val_classes > 0:
        train_part, val_part = split_train_classes(train, config.val_classes, config.seed)
        train, val = train_part, _with_test_transform(val_part, build)
    return RunData(spec=spec, train=train, test=test, val=val, prepared=prepared)


def _with_test_transform(val: Any, build: Callable[[str, bool], DMLDataset]) -> Any:
    """Validation images are evaluated like test images (centre crop, no flip)."""
    val.dataset = build("train", False)
    return val


class SeededItems(torch.utils.data.Dataset):
    """Gives each item's random transform its own seed, a function of (run seed, step, slot).

    Data augmentation then depends neither on the number of loader workers nor on where a run was
    resumed, so a resumed run sees exactly the images an uninterrupted one would have seen. Keys are
    ``(index, seed)`` pairs from :class:`~dml_bench.train.sampling.StepBatchSampler`; a whole batch is
    fetched at once (``__getitems__``), through the dataset's own ``get_batch`` when it has one.
    """

    def __init__(self, dataset: DMLDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> Any:
        if isinstance(self.dataset, BatchedDataset) and self.dataset.transform is None:
            return self.dataset.get_batch([i for i, _ in keys])  # nothing random to seed
        with torch.random.fork_rng(devices=[]):
            state = random.getstate()
            try:
                items = []
                for index, seed in keys:
                    torch.default_generator.manual_seed(seed)  # CPU only: no lazy-CUDA cost
                    random.seed(seed)
                    items.append(self.dataset[index])
                return items
            finally:
                random.setstate(state)


class BatchedItems(torch.utils.data.Dataset):
    """Plain batched access for evaluation: ``__getitems__`` through ``get_batch`` if available."""

    def __init__(self, dataset: DMLDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> Any:
        if isinstance(self.dataset, BatchedDataset):
            return self.dataset.get_batch(indices)
        return [self.dataset[i] for i in indices]


def collate(batch: Any) -> Any:
    """Pass batches that ``get_batch`` already stacked; stack lists of items as usual."""
    if isinstance(batch, tuple):
        return batch
    return torch.utils.data.default_collate(batch)


def diagnostic_indices(labels: Any, classes: int, per_class: int, seed: int) -> list[int]:
    """A fixed batch of training images for the RQ1/RQ3 diagnostics: ``classes`` classes with up
    to ``per_class`` images each (classes with fewer than two images cannot give positives)."""
    rng = np.random.RandomState(seed + 7919)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    eligible = sorted(c for c, idx in by_class.items() if len(idx) >= 2)
    chosen = rng.permutation(eligible)[:classes] if eligible else np.array([], dtype=int)
    out: list[int] = []
    for c in sorted(chosen.tolist()):
        take = min(per_class, len(by_class[c]))
        out += rng.choice(by_class[c], size=take, replace=False).tolist()
    return out
