"""Class-disjoint validation folds carved out of the *train* classes.

The zero-shot protocol (docs/protocol.md; Musgrave et al. 2020, Sec. 3.1) forbids any decision that looks
at the test classes: hyperparameters are chosen on validation classes taken from the train
classes. The train classes are partitioned, by a seeded permutation, into ``K`` parts of (nearly)
equal size; fold ``k`` validates on part ``k`` and trains on the others. The test split is never
part of a fold, and :func:`assert_no_test_classes` checks it before any trial trains.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dml_bench.data import DMLDataset
from dml_bench.data.subsets import ClassSubset
from dml_bench.errors import ConfigError
from dml_bench.train.config import RunConfig
from dml_bench.train.data import RunData, load_run_data

#: Fewest classes a fold's validation part may hold (MAP@R and NMI need several classes).
MIN_VAL_CLASSES = 2


def fold_parts(n_classes: int, folds: int, seed: int) -> list[list[int]]:
    """The class indices of each of ``folds`` parts: a seeded permutation cut in K pieces."""
    if n_classes // folds < MIN_VAL_CLASSES:
        raise ConfigError(
            f"--folds {folds} needs at least {MIN_VAL_CLASSES * folds} train classes (each fold "
            f"validates on at least {MIN_VAL_CLASSES}), but the dataset has {n_classes}. Use "
            f"fewer folds (at most {max(2, n_classes // MIN_VAL_CLASSES)}) or more classes."
        )
    order = np.random.RandomState(seed).permutation(n_classes)
    return [part.tolist() for part in np.array_split(order, folds)]


@dataclasses.dataclass
class FoldSource:
    """What the folds are cut from: the train split with train and with test transforms, and the
    class names of the test split (to prove the folds hold none of them)."""

    spec: Any
    train: DMLDataset  # train transforms (augmentation)
    train_eval: DMLDataset  # the same images with test transforms (validation is evaluated so)
    test_classes: frozenset[str]
    prepared: list[str]


def load_fold_source(config: RunConfig, folds: int) -> FoldSource:
    """Load the dataset and check it has enough train classes for ``folds`` folds.

    Photo datasets validate with test transforms (centre crop, no flip): the class split of
    ``--val-classes`` builds the train split with those, and only its underlying dataset is kept.
    """
    data = load_run_data(dataclasses.replace(config, val_classes=0.0))
    fold_parts(len(data.train.classes), folds, config.seed)  # enough classes?
    train_eval = data.train
    if data.spec.input_kind != "tensor":
        split = load_run_data(dataclasses.replace(config, val_classes=1.0 / folds))
        assert isinstance(split.val, ClassSubset)
        train_eval = split.val.dataset
    return FoldSource(
        spec=data.spec,
        train=data.train,
        train_eval=train_eval,
        test_classes=frozenset(map(str, data.test.classes)),
        prepared=list(data.prepared),
    )


def fold_data(source: FoldSource, folds: int, fold: int, seed: int) -> RunData:
    """Fold ``fold``: train on the other parts; the loop evaluates its ``test`` split, which here
    is the validation part (the real test split is not in the returned data at all)."""
    parts = fold_parts(len(source.train.classes), folds, seed)
    val_labels = parts[fold]
    train_labels = [c for k, part in enumerate(parts) if k != fold for c in part]
    train = ClassSubset(source.train, train_labels)
    val = ClassSubset(source.train_eval, val_labels)
    data = RunData(spec=source.spec, train=train, test=val, val=None, prepared=source.prepared)
    assert_no_test_classes(data, source.test_classes)
    return data


def assert_no_test_classes(data: RunData, test_classes: frozenset[str]) -> None:
    """The protocol in code: a tuning fold holds no test class, neither to train nor to validate."""
    seen = {str(c) for c in data.train.classes} | {str(c) for c in data.test.classes}
    leaked = sorted(seen & test_classes)
    if leaked:
        raise AssertionError(
            f"A tuning fold contains test classes ({', '.join(leaked[:5])}...): tuning must only "
            "see train classes."
        )
    if data.val is not None:
        raise AssertionError("A tuning fold must not carry a second evaluation split.")
