"""Every registered method (built-ins and installed plugins) passes the conformance checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from dml_bench.methods import METHODS, MethodConfig, MethodSpec, build_method
from dml_bench.testing import check_method, make_batch_labels


@pytest.mark.parametrize("name", METHODS.names())
def test_method_passes_check_method(name: str) -> None:
    check_method(METHODS.get(name))


@pytest.mark.parametrize("name", METHODS.names())
def test_forward_backward_reaches_embeddings_and_proxies(name: str) -> None:
    spec = METHODS.get(name)
    config = spec.default_config()
    method = build_method(spec, config, num_classes=20, embedding_size=8)
    g = torch.Generator().manual_seed(3)
    labels = make_batch_labels(spec.batch_needs(config), 20, 40, g)  # 20 classes: n_pairs has m=2
    method.batch_needs.check_labels(labels, name)
    embeddings = torch.randn(40, 8, generator=g, requires_grad=True)
    loss = method.compute_loss(embeddings, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert embeddings.grad is not None and torch.isfinite(embeddings.grad).all()
    assert embeddings.grad.abs().sum() > 0
    for parameter in method.loss.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
        assert parameter.grad.abs().sum() > 0
    if spec.family == "proxy":
        assert method.proxy_loss is not None
        assert method.config.loss_lr is not None


@pytest.mark.parametrize("name", METHODS.names())
def test_proxy_methods_hold_the_only_parameters(name: str) -> None:
    spec = METHODS.get(name)
    loss = build_method(spec, spec.default_config(), 5, 4).loss
    has_parameters = any(True for _ in loss.parameters())
    assert has_parameters == (spec.family == "proxy")


@dataclasses.dataclass(frozen=True)
class _NoConfig(MethodConfig):
    m_per_class: int | None = 4


class _NaNLoss(nn.Module):
    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices: object
    ) -> torch.Tensor:
        return embeddings.sum() * float("nan")


def test_check_method_rejects_a_loss_returning_nan() -> None:
    spec = MethodSpec(
        name="broken_nan",
        description="returns NaN",
        reference="-",
        config_cls=_NoConfig,
        build_loss=lambda num_classes, embedding_size, config: _NaNLoss(),
    )
    with pytest.raises(AssertionError, match="not finite"):
        check_method(spec)
