"""What a method is: a loss, an optional miner, and what it needs from a batch.

This is the one interface for built-in and third-party methods alike (the built-ins register
through it too; there is no private back door). A third party publishes a :class:`MethodSpec` under
the ``dml_bench.methods`` entry-point group; see :mod:`dml_bench.plugins`.

The host owns the control flow: the training loop builds the loss (and miner) from the spec, puts
the loss's own parameters (e.g. proxies) in their own optimiser parameter group with their own
learning rate (``MethodConfig.loss_lr``), samples batches as :class:`BatchNeeds` asks, mines under
``no_grad`` and calls the loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from dml_bench.config import build_config, config_class_problems
from dml_bench.errors import ConfigError, PluginError
from dml_bench.methods.space import SearchParam, space_problems


@dataclass(frozen=True)
class MethodConfig:
    """Fields every method's config has; subclass it (frozen) to add the method's own.

    ``m_per_class``: ``None`` samples plain random batches; an integer samples ``m`` images of each
    class in the batch (pytorch-metric-learning's ``MPerClassSampler``). Pair- and triplet-based
    losses need it; Proxy-NCA does not (the positive is a proxy), but may be run with it so the
    report can compare samplers (see docs/protocol.md, "Batch composition").

    ``loss_lr``: learning rate of the loss's own parameters (the proxies), which reproductions found
    must be larger than the trunk's (pytorch-metric-learning issue #206). ``None`` uses the trunk's.
    """

    m_per_class: int | None = None
    loss_lr: float | None = None


C = TypeVar("C", bound=MethodConfig)


@dataclass(frozen=True)
class BatchNeeds:
    """What a method needs from a batch; the loop validates every batch against it."""

    m_per_class: int | None = None
    needs_positives: bool = False

    def check_batch_size(self, batch_size: int, method: str) -> None:
        m = self.m_per_class
        if m is None:
            return
        if batch_size % m != 0 or batch_size // m < 2:
            raise ConfigError(
                f"Batch size {batch_size} cannot hold {m} samples per class for method {method!r}: "
                f"it must be a multiple of m_per_class={m} covering at least 2 classes. Use e.g. "
                f"--batch-size {max(2 * m, (batch_size // m + 1) * m)}, or change "
                f"--set {method}.m_per_class=..."
            )

    def check_labels(self, labels: torch.Tensor, method: str) -> None:
        """Raise if a sampled batch breaks the method's needs (a sampler bug, not user input)."""
        if not self.needs_positives:
            return
        _, counts = torch.unique(labels, return_counts=True)
        if counts.numel() < 2 or bool((counts < 2).any()):
            raise RuntimeError(
                f"Method {method!r} needs every class in a batch at least twice and two classes; "
                f"got class counts {counts.tolist()}."
            )


@runtime_checkable
class ProxyLoss(Protocol):
    """A loss with learned proxies; the diagnostics of RQ1, RQ3 and RQ5 read these.

    ``proxies``: the (num_proxies, dim) parameter. ``scale``: the softmax scale applied to
    squared distances. ``assign(embeddings, labels)``: the index of p(x), the proxy each embedding
    is assigned to (static: the nearest proxy of its class; dynamic: the nearest proxy overall).
    ``normalized_proxies()``: the proxies as used by the loss (L2-normalised).
    """

    proxies: nn.Parameter
    scale: float

    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    def normalized_proxies(self) -> torch.Tensor: ...


@runtime_checkable
class DeferredProxies(Protocol):
    """A proxy loss whose proxies are set by its first training step (``proxy_nca_dynamic`` with
    ``proxy_init="first_batch"``). Until ``proxies_ready``, its proxies are placeholders the method
    never trains with, so the diagnostics skip them (:func:`~dml_bench.methods._proxies.
    proxy_diagnostics`): a step-0 row would otherwise describe the placeholders."""

    @property
    def proxies_ready(self) -> bool: ...


@runtime_checkable
class RandomInit(Protocol):
    """A loss whose parameters start at random (e.g. proxies). :func:`build_method`, given the
    run's generator, calls ``reset_parameters(generator)`` right after ``build_loss``, so the draw
    is a function of the run's seed, not of what drew from the global RNG before."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None: ...


LossBuilder = Callable[[int, int, Any], nn.Module]
MinerBuilder = Callable[[Any], nn.Module]


@dataclass(frozen=True)
class DiagnosticBatch:
    """The fixed diagnostic batch of a run, embedded by the current network at an evaluation.

    ``embeddings`` / ``labels``: the same training images at every evaluation (docs/protocol.md, RQ1 and
    RQ3). ``generator``: seeded by the run, fresh at every evaluation, for any random sampling a
    diagnostic needs (e.g. triplets). ``num_samples``: how many such samples the run asks for
    (``RunConfig.diagnostic_triplets``).
    """

    embeddings: torch.Tensor
    labels: torch.Tensor
    generator: torch.Generator
    num_samples: int


#: ``diagnostics(loss, batch)``: named floats for ``metrics.csv`` (one column each), computed from
#: the built loss module on the diagnostic batch. The host calls it under ``no_grad``, in eval
#: mode, at every evaluation, and only for methods that supply one.
DiagnosticsFn = Callable[[nn.Module, DiagnosticBatch], dict[str, float]]


@dataclass(frozen=True)
class MethodSpec(Generic[C]):
    """A registered method.

    ``build_loss(num_classes, embedding_size, config)`` returns an ``nn.Module`` called as
    ``loss(embeddings, labels, indices_tuple)`` -> scalar tensor (pytorch-metric-learning's calling
    convention). ``build_miner(config)``, if given, returns a miner called as
    ``miner(embeddings, labels)`` -> indices tuple; the loop calls it under ``no_grad``.
    ``family`` says which side of the paper's comparison the method is on: ``"proxy"`` or
    ``"pair"`` (triplet-based: triplet, lifted structure, NCA, ...).

    Roles the report reads (so a plugin method takes part in the answers without the report
    naming it): ``proxy_count_field`` names the config field that counts the method's proxies
    (e.g. ``"proxies_per_class"``), the x-axis of the RQ5 sweep; ``proxy_assignment`` says how
    p(x) is chosen, ``"static"`` (among the proxies of x's class) or ``"dynamic"`` (the nearest
    proxy overall), the two sides of RQ5. Both are ``None`` for a method without proxies, and
    may be ``None`` for a proxy method that does not take part in RQ5.
    ``diagnostics``, if given, is a :data:`DiagnosticsFn` whose named values join each evaluation
    row (the proxy methods give the RQ1/RQ3 terms of :mod:`dml_bench.eval.diagnostics`).
    ``search_space``: what ``dml-bench tune`` may search, one :class:`SearchParam` per value, each
    with a citation for its range (see :mod:`dml_bench.methods.space`); empty: cannot be tuned.
    """

    name: str
    description: str
    reference: str
    config_cls: type[C]
    build_loss: LossBuilder
    build_miner: MinerBuilder | None = None
    family: Literal["proxy", "pair"] = "pair"
    needs_positives: bool = True
    proxy_count_field: str | None = None
    proxy_assignment: Literal["static", "dynamic"] | None = None
    diagnostics: DiagnosticsFn | None = None
    search_space: tuple[SearchParam, ...] = ()

    def __post_init__(self) -> None:
        validate_spec(self)

    def default_config(self) -> C:
        return self.config_cls()

    def make_config(self, values: dict[str, Any] | None = None) -> C:
        config = build_config(self.config_cls, values or {}, f"method {self.name!r}")
        self.batch_needs(config)  # validates m_per_class against needs_positives
        return config

    def batch_needs(self, config: C) -> BatchNeeds:
        m = config.m_per_class
        if self.needs_positives and (m is None or m < 2):
            raise ConfigError(
                f"Method {self.name!r} needs positives inside each batch, so m_per_class must be an "
                f"integer >= 2 (got {m!r}). Use e.g. --set {self.name}.m_per_class=4."
            )
        if m is not None and m < 1:
            raise ConfigError(f"m_per_class for {self.name!r} must be >= 1, got {m}.")
        return BatchNeeds(m_per_class=m, needs_positives=self.needs_positives)


def validate_spec(spec: Any) -> None:
    """Check that a (possibly third-party) spec is well formed; raise PluginError naming it."""
    problems = []
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        problems.append(f"name must be an identifier-like string, got {name!r}")
    cls = getattr(spec, "config_cls", None)
    problems += config_class_problems(cls, MethodConfig)
    if not problems and cls is not None:
        fields = [f.name for f in dataclasses.fields(cls)]
        problems += space_problems(getattr(spec, "search_space", ()), fields)
    if not callable(getattr(spec, "build_loss", None)):
        problems.append("build_loss must be callable")
    for attr in ("build_miner", "diagnostics"):
        value = getattr(spec, attr, None)
        if value is not None and not callable(value):
            problems.append(f"{attr} must be callable or None")
    if getattr(spec, "family", None) not in ("proxy", "pair"):
        problems.append("family must be 'proxy' or 'pair'")
    problems += _role_problems(spec, cls)
    if not isinstance(getattr(spec, "description", None), str):
        problems.append("description must be a string")
    if problems:
        raise PluginError(f"Invalid method spec {name!r}: " + "; ".join(problems) + ".")


PROXY_ASSIGNMENTS = ("static", "dynamic")


def _role_problems(spec: Any, cls: Any) -> list[str]:
    """What is wrong with the spec's report roles (``proxy_count_field``, ``proxy_assignment``)."""
    problems = []
    count = getattr(spec, "proxy_count_field", None)
    assignment = getattr(spec, "proxy_assignment", None)
    if count is not None:
        if not isinstance(count, str):
            problems.append(f"proxy_count_field must be a config field name or None, got {count!r}")
        elif dataclasses.is_dataclass(cls) and count not in {
            f.name for f in dataclasses.fields(cls)
        }:
            problems.append(f"proxy_count_field {count!r} is not a field of config_cls")
    if assignment is not None and assignment not in PROXY_ASSIGNMENTS:
        problems.append(f"proxy_assignment must be 'static', 'dynamic' or None, got {assignment!r}")
    if getattr(spec, "family", None) == "pair" and (count is not None or assignment is not None):
        problems.append("proxy_count_field and proxy_assignment are only for family 'proxy'")
    return problems


@dataclass
class Method:
    """A spec built for one run: its config, loss module and optional miner."""

    spec: MethodSpec[Any]
    config: MethodConfig
    loss: nn.Module
    miner: nn.Module | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def batch_needs(self) -> BatchNeeds:
        return self.spec.batch_needs(self.config)

    @property
    def proxy_loss(self) -> ProxyLoss | None:
        return self.loss if isinstance(self.loss, ProxyLoss) else None

    @property
    def has_diagnostics(self) -> bool:
        return self.spec.diagnostics is not None

    def diagnose(self, batch: DiagnosticBatch) -> dict[str, float]:
        """The spec's diagnostics on ``batch`` (none if it has none), as plain floats."""
        if self.spec.diagnostics is None:
            return {}
        with torch.no_grad():
            values = self.spec.diagnostics(self.loss, batch)
        return {str(name): float(value) for name, value in values.items()}

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mine (without gradients) then compute the loss, as pytorch-metric-learning does."""
        indices = None
        if self.miner is not None:
            with torch.no_grad():
                indices = self.miner(embeddings.detach(), labels)
        return self.loss(embeddings, labels, indices)


def build_method(
    spec: MethodSpec[Any],
    config: MethodConfig,
    num_classes: int,
    embedding_size: int,
    generator: torch.Generator | None = None,
) -> Method:
    """Build the spec's loss and miner; a loss that implements :class:`RandomInit` draws its
    parameters from ``generator`` (the global RNG when ``None``)."""
    loss = spec.build_loss(num_classes, embedding_size, config)
    if not isinstance(loss, nn.Module):
        raise PluginError(
            f"Method {spec.name!r}: build_loss returned {type(loss).__name__}, not a torch.nn.Module."
        )
    if generator is not None and isinstance(loss, RandomInit):
        loss.reset_parameters(generator)
    miner = spec.build_miner(config) if spec.build_miner is not None else None
    return Method(spec=spec, config=config, loss=loss, miner=miner)
