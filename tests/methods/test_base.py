"""The method interface: batch needs, spec validation (report roles included), building, and
the diagnostics hook."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from dml_bench.errors import ConfigError, PluginError
from dml_bench.eval.diagnostics import (
    order_agreement,
    order_ties,
    proxy_bound_terms,
    sample_triplets,
)
from dml_bench.methods import METHODS
from dml_bench.methods.base import (
    BatchNeeds,
    DiagnosticBatch,
    MethodConfig,
    MethodSpec,
    build_method,
    validate_spec,
)


@dataclass(frozen=True)
class _Config(MethodConfig):
    m_per_class: int | None = 4
    circles_per_class: int = 1


class _Loss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices: Any) -> torch.Tensor:
        self.indices = indices
        return self.weight * embeddings.pow(2).sum()


def _spec(**overrides: Any) -> MethodSpec[Any]:
    values: dict[str, Any] = {
        "name": "circle_proxy",
        "description": "a test method",
        "reference": "none",
        "config_cls": _Config,
        "build_loss": lambda num_classes, embedding_size, config: _Loss(),
    }
    return MethodSpec(**(values | overrides))


# ---------------------------------------------------------------- batch needs
@pytest.mark.parametrize(("batch_size", "ok"), [(8, True), (32, True), (6, False), (4, False)])
def test_batch_size_must_hold_two_classes_of_m(batch_size: int, ok: bool) -> None:
    needs = BatchNeeds(m_per_class=4, needs_positives=True)
    if ok:
        needs.check_batch_size(batch_size, "m")
    else:
        with pytest.raises(ConfigError, match="multiple of m_per_class=4"):
            needs.check_batch_size(batch_size, "m")


def test_random_batches_take_any_size() -> None:
    BatchNeeds(m_per_class=None).check_batch_size(3, "m")


def test_labels_without_positives_are_a_sampler_bug() -> None:
    needs = BatchNeeds(m_per_class=2, needs_positives=True)
    needs.check_labels(torch.tensor([0, 0, 1, 1]), "m")
    with pytest.raises(RuntimeError, match="at least twice"):
        needs.check_labels(torch.tensor([0, 0, 1, 2]), "m")
    with pytest.raises(RuntimeError):
        needs.check_labels(torch.tensor([0, 0, 0, 0]), "m")  # one class only
    BatchNeeds(needs_positives=False).check_labels(torch.tensor([0, 1, 2]), "m")


# ---------------------------------------------------------------- spec validation
@dataclass(frozen=True)
class _NoDefault(MethodConfig):
    needed: int = dataclasses.field(kw_only=True)


@dataclass(frozen=True)
class _NotAMethodConfig:
    m_per_class: int | None = None


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"name": "circle-proxy"}, "name must be an identifier"),
        ({"config_cls": dict}, "config_cls must be a dataclass type"),
        ({"config_cls": _NotAMethodConfig}, "must subclass"),
        ({"config_cls": _NoDefault}, "needs a default"),
        ({"build_loss": None}, "build_loss must be callable"),
        ({"build_miner": 3}, "build_miner must be callable or None"),
        ({"family": "triplet"}, "family must be 'proxy' or 'pair'"),
        ({"description": None}, "description must be a string"),
        ({"family": "proxy", "proxy_count_field": "circles"}, "'circles' is not a field"),
        ({"family": "proxy", "proxy_count_field": 3}, "config field name or None"),
        ({"family": "proxy", "proxy_assignment": "nearest"}, "'static', 'dynamic' or None"),
        ({"family": "pair", "proxy_count_field": "circles_per_class"}, "only for family 'proxy'"),
        ({"family": "pair", "proxy_assignment": "static"}, "only for family 'proxy'"),
    ],
)
def test_invalid_specs_are_plugin_errors_naming_the_problem(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(PluginError, match="Invalid method spec") as err:
        _spec(**overrides)
    assert problem in str(err.value)


def test_a_proxy_method_declares_its_report_roles() -> None:
    spec = _spec(family="proxy", proxy_count_field="circles_per_class", proxy_assignment="static")
    assert (spec.proxy_count_field, spec.proxy_assignment) == ("circles_per_class", "static")
    assert _spec(family="proxy").proxy_assignment is None  # roles are optional


def test_validate_spec_checks_any_object_a_plugin_hands_in() -> None:
    good = _spec()
    validate_spec(good)

    class Duck:  # not a MethodSpec: a plugin may hand in anything
        pass

    duck = Duck()
    for f in dataclasses.fields(good):
        setattr(duck, f.name, getattr(good, f.name))
    validate_spec(duck)
    duck.proxy_assignment = "sometimes"  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="proxy_assignment"):
        validate_spec(duck)


def test_builtin_roles() -> None:
    roles = {
        name: (METHODS.get(name).family, METHODS.get(name).proxy_count_field)
        for name in ("proxy_nca", "proxy_nca_dynamic", "triplet_semihard")
    }
    assert roles == {
        "proxy_nca": ("proxy", "proxies_per_class"),
        "proxy_nca_dynamic": ("proxy", "proxies_per_class"),
        "triplet_semihard": ("pair", None),
    }
    assert METHODS.get("proxy_nca").proxy_assignment == "static"
    assert METHODS.get("proxy_nca_dynamic").proxy_assignment == "dynamic"
    for name in METHODS.names():
        spec = METHODS.get(name)
        if spec.proxy_count_field is not None:
            assert hasattr(spec.default_config(), spec.proxy_count_field)


# ---------------------------------------------------------------- configs and building
def test_make_config_rejects_unknown_keys_and_missing_positives() -> None:
    spec = _spec()
    assert spec.make_config({"circles_per_class": 3}).circles_per_class == 3
    with pytest.raises(ConfigError):
        spec.make_config({"circles": 3})
    with pytest.raises(ConfigError, match="needs positives"):
        spec.make_config({"m_per_class": None})
    with pytest.raises(ConfigError, match=">= 1"):
        _spec(needs_positives=False).make_config({"m_per_class": 0})


def test_build_method_mines_without_gradients_and_passes_the_indices() -> None:
    seen: list[bool] = []

    def miner(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        seen.append(torch.is_grad_enabled())
        return (labels,)

    spec = _spec(build_miner=lambda config: _MinerModule(miner))
    method = build_method(spec, spec.default_config(), num_classes=3, embedding_size=2)
    x = torch.ones(4, 2, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss = method.compute_loss(x, labels)
    loss.backward()
    assert seen == [False] and method.loss.indices[0] is labels  # type: ignore[union-attr]
    assert torch.equal(x.grad, 2 * torch.ones(4, 2))  # type: ignore[arg-type]
    assert method.proxy_loss is None and method.batch_needs.m_per_class == 4


class _MinerModule(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Any:
        return self.fn(embeddings, labels)


def test_build_loss_must_return_a_module() -> None:
    spec = _spec(build_loss=lambda n, d, c: "not a module")
    with pytest.raises(PluginError, match="not a torch.nn.Module"):
        build_method(spec, spec.default_config(), num_classes=3, embedding_size=2)


def batch(seed: int = 0) -> DiagnosticBatch:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(16, 8, generator=generator)
    labels = torch.arange(4).repeat_interleave(4)
    return DiagnosticBatch(embeddings, labels, torch.Generator().manual_seed(seed + 1), 100)


@pytest.mark.parametrize("name", ["proxy_nca", "proxy_nca_dynamic"])
def test_proxy_methods_diagnose_with_the_eval_functions(name: str) -> None:
    spec = METHODS.get(name)
    method = build_method(spec, spec.make_config({}), num_classes=4, embedding_size=8)
    data = batch()
    loss = method.proxy_loss
    assert loss is not None
    if name == "proxy_nca_dynamic":  # first_batch proxies: placeholders until the first step
        assert method.diagnose(batch()) == {}
        loss.initialise_from(data.embeddings)
    got = method.diagnose(batch())
    expected = proxy_bound_terms(data.embeddings, data.labels, loss)
    triplets = sample_triplets(data.labels, 100, torch.Generator().manual_seed(1))
    expected["order_ties"] = order_ties(data.embeddings, data.labels, loss, triplets)
    expected["order_agreement"] = order_agreement(data.embeddings, data.labels, loss, triplets)
    assert list(got) == list(expected)  # the metrics.csv columns, in their order
    assert got == pytest.approx(expected)
    assert all(isinstance(v, float) and math.isfinite(v) for v in got.values())


@pytest.mark.parametrize("name", ["triplet_semihard", "lifted_structure", "nca"])
def test_methods_without_diagnostics_give_none(name: str) -> None:
    spec = METHODS.get(name)
    method = build_method(spec, spec.make_config({}), num_classes=4, embedding_size=8)
    assert not method.has_diagnostics and method.diagnose(batch()) == {}


def test_a_spec_supplies_its_own_diagnostics() -> None:
    calls = []

    def diagnostics(loss: torch.nn.Module, data: DiagnosticBatch) -> dict[str, float]:
        calls.append((loss, torch.is_grad_enabled()))
        return {"mean_norm": data.embeddings.norm(dim=1).mean()}  # a tensor: made a float

    spec = dataclasses.replace(METHODS.get("nca"), diagnostics=diagnostics)
    method = build_method(spec, spec.make_config({}), num_classes=4, embedding_size=8)
    data = batch()
    got = method.diagnose(data)
    assert got == {"mean_norm": pytest.approx(float(data.embeddings.norm(dim=1).mean()))}
    assert type(got["mean_norm"]) is float
    assert calls == [(method.loss, False)]  # the built loss, under no_grad


def test_a_non_callable_diagnostics_is_an_invalid_spec() -> None:
    with pytest.raises(PluginError, match="diagnostics must be callable"):
        dataclasses.replace(METHODS.get("nca"), diagnostics="terms")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", METHODS.names())
def test_every_builtin_proxy_loss_supplies_the_proxy_diagnostics(name: str) -> None:
    """The RQ1/RQ3 columns of metrics.csv come from the spec, for every built-in proxy loss."""
    from dml_bench.methods import ProxyLoss
    from dml_bench.methods._proxies import proxy_diagnostics

    spec = METHODS.get(name)
    method = build_method(spec, spec.make_config({}), num_classes=4, embedding_size=8)
    expected = proxy_diagnostics if isinstance(method.loss, ProxyLoss) else None
    assert spec.diagnostics is expected
