"""ProxyNCA++: the loss against pytorch-metric-learning's ProxyNCALoss at scale 1/T, and each
change over Proxy-NCA a field that switches it off."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import ProxyNCALoss

from dml_bench.errors import ConfigError
from dml_bench.methods import ProxyLoss, build_method
from dml_bench.methods.proxy_nca import SPEC as PROXY_NCA
from dml_bench.methods.proxy_nca_pp import SEARCH_SPACE, SPEC


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(20, 8, generator=g), torch.randint(6, (20,), generator=g)


@pytest.mark.parametrize("temperature", [1.0 / 9.0, 0.5])
def test_default_loss_equals_pml_proxy_nca_at_scale_one_over_t(temperature: float) -> None:
    """Proxy assignment probability = PML's softmax over all proxies; low T = its softmax_scale."""
    method = build_method(SPEC, SPEC.make_config({"temperature": temperature}), 6, 8)
    theirs = ProxyNCALoss(6, 8, softmax_scale=1.0 / temperature)
    with torch.no_grad():
        theirs.proxies.copy_(method.loss.proxies)
    x, labels = _batch(1)
    ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours_value = method.compute_loss(ours_x, labels)
    theirs_value = theirs(theirs_x, labels)
    torch.testing.assert_close(ours_value, theirs_value, rtol=1e-5, atol=1e-5)
    ours_value.backward()
    theirs_value.backward()
    torch.testing.assert_close(ours_x.grad, theirs_x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(method.loss.proxies.grad, theirs.proxies.grad, rtol=1e-4, atol=1e-6)


def test_every_change_switched_off_is_the_original_proxy_nca() -> None:
    """T=1, negatives-only denominator, proxies at the network's lr, random batches."""
    off = {"temperature": 1.0, "denominator": "negatives", "loss_lr": None, "m_per_class": None}
    config = SPEC.make_config(off)
    original = PROXY_NCA.make_config({"scale": 1.0, "loss_lr": None})
    assert SPEC.batch_needs(config) == PROXY_NCA.batch_needs(original)
    assert config.loss_lr is None
    ours = build_method(SPEC, config, 6, 8)
    theirs = build_method(PROXY_NCA, original, 6, 8)
    theirs.loss.load_state_dict(ours.loss.state_dict())
    x, labels = _batch(2)
    assert ours.compute_loss(x, labels).item() == pytest.approx(
        theirs.compute_loss(x, labels).item(), rel=1e-6
    )


def test_defaults_are_the_papers_loss_side_changes() -> None:
    config = SPEC.default_config()
    assert config.temperature == pytest.approx(1 / 9) and config.denominator == "all"
    assert config.loss_lr is not None and config.loss_lr > 1e-3  # fast-moving proxies
    assert config.m_per_class == 4 and not SPEC.needs_positives  # class-balanced, not required
    assert config.label_smoothing == 0.0 and config.proxies_per_class == 1
    loss = build_method(SPEC, config, 5, 4).loss
    assert isinstance(loss, ProxyLoss) and SPEC.family == "proxy"
    assert loss.scale == pytest.approx(9.0) and loss.denominator == "all"
    assert set(SEARCH_SPACE) <= set(config.__dataclass_fields__)


@pytest.mark.parametrize(
    "values",
    [{"temperature": 0}, {"denominator": "positives"}, {"loss_lr": -1}, {"proxies_per_class": 0}],
)
def test_bad_values_are_config_errors(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config(values)
