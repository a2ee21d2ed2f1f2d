"""What a dataset is, for dml-bench.

Every dataset follows torchvision's contract (``root, split, transform, download``) and adds what
zero-shot metric learning needs: integer ``labels`` for every item (contiguous ``0..C-1`` within the
split, so samplers and evaluators can use them directly) and ``classes``, the original class
identities in label order, used to assert that train and test classes are disjoint (PAPER.md,
"Protocol").

A :class:`DatasetSpec` is the registered unit, for built-ins and plugins alike
(entry-point group ``dml_bench.datasets``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import torch

from dml_bench.config import build_config
from dml_bench.errors import ConfigError, PluginError

Split = Literal["train", "test"]
DATA_ROOT_ENV = "DML_BENCH_DATA_ROOT"


@runtime_checkable
class DMLDataset(Protocol):
    """A split of a dataset: ``dataset[i] -> (image_tensor, label)``."""

    @property
    def labels(self) -> Sequence[int]: ...

    @property
    def classes(self) -> Sequence[str]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...


@dataclass(frozen=True)
class DatasetConfig:
    """Fields every dataset config has; subclass it (frozen) to add a dataset's own."""


D = TypeVar("D", bound=DatasetConfig)


@dataclass(frozen=True)
class DataRequest:
    """What the loop asks of a dataset builder.

    ``transform`` is applied to each image (a PIL image for photo datasets); ``None`` means the
    dataset's own default. ``download`` fetches official archives where the dataset supports it.
    """

    root: Path
    split: Split
    transform: Callable[[Any], Any] | None = None
    download: bool = False


@dataclass(frozen=True)
class Located:
    """Where a dataset looks for its files and whether it found them (``dml-bench datasets``)."""

    path: Path
    found: bool
    detail: str = ""


@dataclass(frozen=True)
class DatasetSpec(Generic[D]):
    """A registered dataset.

    ``build(request, config)`` returns a :class:`DMLDataset` for ``request.split`` or raises
    :class:`~dml_bench.errors.DatasetNotFoundError` naming the files it expected and how to get
    them. ``locate(root, config)`` says where it looks, without loading anything.
    ``input_kind``: ``"photo"`` datasets yield PIL RGB images and take the trunk's transforms
    (PAPER.md: resize 256, random crop 227, flip); ``"tensor"`` datasets yield ready tensors of
    ``channels`` x ``image_size`` x ``image_size`` and ignore ``transform`` when it is ``None``.
    ``recall_ks``: the K of Recall@K that papers report for this dataset.
    """

    name: str
    description: str
    reference: str
    config_cls: type[D]
    build: Callable[[DataRequest, Any], DMLDataset]
    locate: Callable[[Path, Any], Located]
    input_kind: Literal["photo", "tensor"] = "photo"
    channels: int = 3
    recall_ks: tuple[int, ...] = (1, 2, 4, 8)

    def __post_init__(self) -> None:
        validate_dataset_spec(self)

    def make_config(self, values: dict[str, Any] | None = None) -> D:
        return build_config(self.config_cls, values or {}, f"dataset {self.name!r}")


def validate_dataset_spec(spec: Any) -> None:
    problems = []
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name:
        problems.append(f"name must be a non-empty string, got {name!r}")
    cls = getattr(spec, "config_cls", None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        problems.append("config_cls must be a dataclass type")
    for attr in ("build", "locate"):
        if not callable(getattr(spec, attr, None)):
            problems.append(f"{attr} must be callable")
    if getattr(spec, "input_kind", None) not in ("photo", "tensor"):
        problems.append("input_kind must be 'photo' or 'tensor'")
    if problems:
        raise PluginError(f"Invalid dataset spec {name!r}: " + "; ".join(problems) + ".")


def default_data_root() -> Path:
    """``$DML_BENCH_DATA_ROOT`` if set, else ``~/.cache/dml-bench``."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "dml-bench"


def assert_class_disjoint(train: DMLDataset, test: DMLDataset, dataset: str) -> None:
    """The zero-shot protocol: no class may appear in both splits (PAPER.md, "Protocol")."""
    shared = set(train.classes) & set(test.classes)
    if shared:
        example = ", ".join(sorted(map(str, shared))[:5])
        raise ConfigError(
            f"Dataset {dataset!r} breaks the zero-shot protocol: {len(shared)} classes are in both "
            f"the train and the test split (e.g. {example}). Train and test classes must be disjoint."
        )
