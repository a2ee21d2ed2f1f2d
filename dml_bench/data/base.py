"""What a dataset is, for dml-bench.

Every dataset follows torchvision's contract (``root, split, transform, download``) and adds what
zero-shot metric learning needs: integer ``labels`` for every item (contiguous ``0..C-1`` within the
split, so samplers and evaluators can use them directly) and ``classes``, the original class
identities in label order, used to assert that train and test classes are disjoint (docs/protocol.md,
"Protocol").

A :class:`DatasetSpec` is the registered unit, for built-ins and plugins alike
(entry-point group ``dml_bench.datasets``), validated like a method's spec.

Optional abilities of a dataset are declared here as protocols, which the host checks with
``isinstance``: :class:`BatchedDataset` (whole batches in one call) and :class:`HasThumbnails`
(images for the qualitative retrieval figure). A photo dataset that lists its image files may read
them already resized from a prepared cache (:mod:`dml_bench.data.prepared`): the host hands the
cache in through :attr:`DataRequest.prepared`, so nothing is attached to a built dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from dml_bench.config import build_config, config_class_problems
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


@runtime_checkable
class BatchedDataset(Protocol):
    """A dataset that returns whole batches: ``get_batch(indices) -> (images, labels)`` stacked.

    The loop uses it when ``transform`` is ``None`` (nothing random to seed per item), e.g. the
    in-memory Hershey glyphs, where one indexing operation replaces a Python call per item.
    """

    transform: Callable[[Any], Any] | None

    def get_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class HasThumbnails(Protocol):
    """A dataset that can show item ``index`` untransformed, as uint8 ``size x size x 3``."""

    def thumbnail(self, index: int, size: int = 64) -> np.ndarray: ...


@runtime_checkable
class PixelSource(Protocol):
    """The pixels of a split's image files, already resized (a prepared cache).

    ``image(i)``: item ``i`` as a 3 x H x W uint8 tensor that the photo transforms accept in place
    of the decoded PIL image. ``folder``: where the pixels live, for the run's record.
    """

    folder: Path

    def image(self, index: int) -> torch.Tensor: ...


#: ``prepared(paths)``: the prepared pixels of exactly these image files (in this order), or
#: ``None`` when there is no matching cache. Raises a UserError for a damaged or stale one.
PreparedLookup = Callable[[Sequence[Path]], PixelSource | None]


@dataclass(frozen=True)
class DatasetConfig:
    """Fields every dataset config has; subclass it (frozen) to add a dataset's own."""


D = TypeVar("D", bound=DatasetConfig)


@dataclass(frozen=True)
class DataRequest:
    """What the loop asks of a dataset builder.

    ``transform`` is applied to each image (a PIL image for photo datasets); ``None`` means the
    dataset's own default. ``download`` fetches official archives where the dataset supports it.
    ``prepared``: where a dataset that lists image files may read them already resized; datasets
    that do not read image files ignore it.
    """

    root: Path
    split: Split
    transform: Callable[[Any], Any] | None = None
    download: bool = False
    prepared: PreparedLookup | None = None


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
    (docs/protocol.md: resize 256, random crop 227, flip); ``"tensor"`` datasets yield ready tensors of
    ``channels`` x ``image_size`` x ``image_size`` and ignore ``transform`` when it is ``None``.
    ``recall_ks``: the K of Recall@K that papers report for this dataset.
    ``tuned_defaults``: the record (``study.json``) of a ``dml-bench tune`` study whose winners are
    the dataset's defaults in ``dml-bench run`` (:mod:`dml_bench.tune.packaged`), or ``None``.
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
    tuned_defaults: Path | None = None

    def __post_init__(self) -> None:
        validate_dataset_spec(self)

    def make_config(self, values: dict[str, Any] | None = None) -> D:
        return build_config(self.config_cls, values or {}, f"dataset {self.name!r}")


def validate_dataset_spec(spec: Any) -> None:
    """Check that a (possibly third-party) spec is well formed; raise PluginError naming it.

    The standard of :func:`dml_bench.methods.base.validate_spec`: the same name and config-class
    rules, every documented field checked for its type.
    """
    problems = []
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        problems.append(f"name must be an identifier-like string, got {name!r}")
    problems += config_class_problems(getattr(spec, "config_cls", None), DatasetConfig)
    for attr in ("build", "locate"):
        if not callable(getattr(spec, attr, None)):
            problems.append(f"{attr} must be callable")
    for attr in ("description", "reference"):
        if not isinstance(getattr(spec, attr, None), str):
            problems.append(f"{attr} must be a string")
    if getattr(spec, "input_kind", None) not in ("photo", "tensor"):
        problems.append("input_kind must be 'photo' or 'tensor'")
    channels = getattr(spec, "channels", None)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        problems.append(f"channels must be a positive integer, got {channels!r}")
    ks = getattr(spec, "recall_ks", None)
    if not (
        isinstance(ks, tuple)
        and ks
        and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks)
    ):
        problems.append(f"recall_ks must be a non-empty tuple of positive integers, got {ks!r}")
    tuned = getattr(spec, "tuned_defaults", None)
    if tuned is not None and not isinstance(tuned, Path):
        problems.append(f"tuned_defaults must be a pathlib.Path or None, got {tuned!r}")
    if problems:
        raise PluginError(f"Invalid dataset spec {name!r}: " + "; ".join(problems) + ".")


def default_data_root() -> Path:
    """``$DML_BENCH_DATA_ROOT`` if set, else ``~/.cache/dml-bench``."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "dml-bench"


def assert_class_disjoint(train: DMLDataset, test: DMLDataset, dataset: str) -> None:
    """The zero-shot protocol: no class may appear in both splits (docs/protocol.md, "Protocol")."""
    shared = set(train.classes) & set(test.classes)
    if shared:
        example = ", ".join(sorted(map(str, shared))[:5])
        raise ConfigError(
            f"Dataset {dataset!r} breaks the zero-shot protocol: {len(shared)} classes are in both "
            f"the train and the test split (e.g. {example}). Train and test classes must be disjoint."
        )
