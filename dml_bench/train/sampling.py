"""Batch sampling as a pure function of (seed, step): deterministic and resumable.

Each epoch's batch list is generated from a generator seeded by ``(seed, epoch)``, so the batch of
any step can be rebuilt after a crash without saving sampler state: resuming at step ``s`` means
asking for batches from ``s`` on. Methods that need positives in a batch get
pytorch-metric-learning's ``MPerClassSampler`` (m images of each of batch_size / m classes);
the others get plain random batches, as the paper trains Proxy-NCA (docs/protocol.md, "Batch composition").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils import common_functions as pml_common

from dml_bench.errors import ConfigError


@contextlib.contextmanager
def _pml_numpy_random(rng: np.random.RandomState) -> Iterator[None]:
    """pytorch-metric-learning draws from a module-level ``NUMPY_RANDOM``; give it our seeded one
    for the duration of one epoch, then put the library's back."""
    previous = pml_common.NUMPY_RANDOM
    pml_common.NUMPY_RANDOM = rng
    try:
        yield
    finally:
        pml_common.NUMPY_RANDOM = previous


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 0x5A17]).generate_state(1)[0])


@dataclass
class BatchPlan:
    """The batches of a run, as index lists into the training set."""

    labels: Sequence[int]
    batch_size: int
    seed: int
    m_per_class: int | None = None
    _cache: dict[int, list[list[int]]] = field(default_factory=dict, repr=False)
    _per_epoch: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n, classes = len(self.labels), len(set(self.labels))
        if n < self.batch_size:
            raise ConfigError(
                f"The training split has {n} images, fewer than one batch of {self.batch_size}. "
                "Use a smaller --batch-size or a dataset with more images."
            )
        m = self.m_per_class
        if m is not None and classes * m < self.batch_size:
            raise ConfigError(
                f"A batch of {self.batch_size} with {m} images per class needs "
                f"{self.batch_size // m} classes, but the training split has only {classes}. "
                "Use a smaller --batch-size or a smaller m_per_class."
            )

    @property
    def name(self) -> str:
        return "random" if self.m_per_class is None else f"m_per_class:{self.m_per_class}"

    @property
    def batches_per_epoch(self) -> int:
        """Every epoch has as many batches (the samplers' lengths are fixed), so this is counted
        once: asking epoch 0 again at every step would evict the current epoch from the
        one-epoch cache and rebuild both, 80 ms per step with m-per-class batches."""
        if self._per_epoch is None:
            self._per_epoch = len(self._epoch(0))
        return self._per_epoch

    def batch(self, step: int) -> list[int]:
        per_epoch = self.batches_per_epoch
        return self._epoch(step // per_epoch)[step % per_epoch]

    def batches(self, start: int, stop: int) -> Iterator[list[int]]:
        for step in range(start, stop):
            yield self.batch(step)

    def _epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._cache:
            self._cache.clear()  # keep only the current epoch
            self._cache[epoch] = self._make_epoch(epoch)
        return self._cache[epoch]

    def _make_epoch(self, epoch: int) -> list[list[int]]:
        seed = _epoch_seed(self.seed, epoch)
        if self.m_per_class is None:
            g = torch.Generator().manual_seed(seed)
            order = torch.randperm(len(self.labels), generator=g).tolist()
        else:
            sampler = MPerClassSampler(
                list(self.labels),
                self.m_per_class,
                batch_size=self.batch_size,
                length_before_new_iter=max(len(self.labels), self.batch_size),
            )
            with _pml_numpy_random(np.random.RandomState(seed % 2**32)):
                order = [int(i) for i in sampler]
        full = len(order) // self.batch_size
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(full)]


def item_seed(seed: int, step: int, slot: int) -> int:
    """The augmentation seed of the item in position ``slot`` of the batch of ``step``."""
    return (seed * 1_000_003 + step * 4099 + slot) % (2**63 - 1)


class StepBatchSampler(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """A DataLoader ``batch_sampler`` yielding the plan's batches for steps ``start..stop-1``,
    each item as ``(index, augmentation seed)`` for :class:`dml_bench.train.data.SeededItems`."""

    def __init__(self, plan: BatchPlan, start: int, stop: int) -> None:
        self.plan, self.start, self.stop = plan, start, stop

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            batch = self.plan.batch(step)
            yield [(i, item_seed(self.plan.seed, step, slot)) for slot, i in enumerate(batch)]

    def __len__(self) -> int:
        return self.stop - self.start
