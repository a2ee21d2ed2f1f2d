"""Proxy-Anchor: the wrapped PML loss against a brute-force loop of Kim et al.'s Eq. 4."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml_bench.errors import ConfigError
from dml_bench.methods import ProxyLoss, build_method
from dml_bench.methods.proxy_anchor import SEARCH_SPACE, SPEC


def _brute_force(
    x: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor, alpha: float, margin: float
) -> float:
    """Positive term averaged over the proxies with positives in the batch, negative over all."""
    sims = F.normalize(x, dim=1) @ F.normalize(proxies, dim=1).T
    n_classes = proxies.shape[0]
    rows = range(len(labels))
    with_positives = [c for c in range(n_classes) if bool((labels == c).any())]
    pos = sum(
        math.log1p(
            sum(math.exp(-alpha * (float(sims[i, c]) - margin)) for i in rows if labels[i] == c)
        )
        for c in with_positives
    )
    neg = sum(
        math.log1p(
            sum(math.exp(alpha * (float(sims[i, c]) + margin)) for i in rows if labels[i] != c)
        )
        for c in range(n_classes)
    )
    return pos / len(with_positives) + neg / n_classes


@pytest.mark.parametrize(("alpha", "margin"), [(32.0, 0.1), (8.0, 0.3)])
def test_loss_matches_brute_force(alpha: float, margin: float) -> None:
    config = SPEC.make_config({"alpha": alpha, "margin": margin})
    method = build_method(SPEC, config, num_classes=5, embedding_size=8)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3, 1])  # class 4 has no point: negative term only
    x = torch.randn(8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = method.compute_loss(x, labels).item()
    want = _brute_force(x, labels, method.loss.proxies.detach().double(), alpha, margin)
    assert got == pytest.approx(want, rel=1e-6)


def test_diagnostics_scale_has_the_sharpness_of_alpha() -> None:
    """A softmax over -scale * squared distances equals Proxy-Anchor's softmax over alpha * cos."""
    method = build_method(SPEC, SPEC.default_config(), num_classes=5, embedding_size=8)
    loss = method.loss
    assert isinstance(loss, ProxyLoss) and method.proxy_loss is loss
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    xn, pn = F.normalize(x, dim=1), loss.normalized_proxies()
    by_distance = torch.softmax(-loss.scale * torch.cdist(xn, pn) ** 2, dim=1)
    by_cosine = torch.softmax(32.0 * xn @ pn.T, dim=1)
    torch.testing.assert_close(by_distance, by_cosine, rtol=1e-4, atol=1e-6)
    assert torch.equal(loss.assign(x, labels), labels)


def test_defaults_are_the_papers() -> None:
    config = SPEC.default_config()
    assert (config.margin, config.alpha) == (0.1, 32.0)
    assert config.loss_lr == pytest.approx(100 * 1e-3)  # 100x the default trunk lr
    assert config.m_per_class is None and not SPEC.needs_positives and SPEC.family == "proxy"
    loss = build_method(SPEC, config, 7, 5).loss
    assert loss.proxies.shape == (7, 5) and (loss.margin, loss.alpha) == (0.1, 32.0)
    assert set(SEARCH_SPACE) <= {f for f in config.__dataclass_fields__}


@pytest.mark.parametrize(
    "values", [{"alpha": 0}, {"margin": -0.1}, {"margin": 1.0}, {"loss_lr": 0}]
)
def test_bad_values_are_config_errors(values: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config(values)


def test_proxies_are_drawn_from_the_runs_generator_as_pml_draws_them() -> None:
    def built(global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)
        generator = torch.Generator().manual_seed(11)
        return build_method(SPEC, SPEC.default_config(), 6, 4, generator=generator).loss.proxies

    first = built(0).detach()
    assert torch.equal(first, built(99).detach())  # not from the global RNG
    expected = torch.empty(6, 4)
    torch.nn.init.kaiming_normal_(
        expected, mode="fan_out", generator=torch.Generator().manual_seed(11)
    )
    assert torch.equal(first, expected)
