"""Static Proxy-NCA against pytorch-metric-learning and brute-force loops of the paper's formula."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import ProxyNCALoss

from dml_bench.errors import ConfigError
from dml_bench.methods import ProxyLoss, build_method
from dml_bench.methods.proxy_nca import SPEC, StaticProxyNCALoss


def _batch(
    num_classes: int, batch_size: int, dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, dim, generator=g, dtype=torch.float64)
    labels = torch.randint(num_classes, (batch_size,), generator=g)
    return embeddings, labels


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a / a.norm(), b / b.norm()
    return float(((a - b) ** 2).sum())


def _brute_force(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxies: torch.Tensor,
    proxies_per_class: int,
    scale: float,
    denominator: str,
    label_smoothing: float = 0.0,
) -> float:
    """The paper's NCA over proxies, one anchor at a time, with plain Python arithmetic."""
    total = 0.0
    for x, c in zip(embeddings, labels.tolist(), strict=True):
        own = range(c * proxies_per_class, (c + 1) * proxies_per_class)
        positive = min(own, key=lambda k: _sq_dist(x, proxies[k]))
        negatives = [k for k in range(len(proxies)) if k // proxies_per_class != c]
        logit = {k: -scale * _sq_dist(x, proxies[k]) for k in [positive, *negatives]}
        denominator_set = negatives if denominator == "negatives" else [positive, *negatives]
        log_z = math.log(sum(math.exp(logit[k]) for k in denominator_set))
        target = (1 - label_smoothing) * logit[positive]
        target += label_smoothing * sum(logit[k] for k in negatives) / len(negatives)
        total += log_z - target
    return total / len(labels)


def test_all_denominator_equals_pml_proxy_nca() -> None:
    num_classes, dim, scale = 6, 8, 9.0
    ours = StaticProxyNCALoss(num_classes, dim, scale=scale, denominator="all")
    theirs = ProxyNCALoss(num_classes, dim, softmax_scale=scale)
    with torch.no_grad():
        ours.proxies.copy_(theirs.proxies)
    embeddings, labels = _batch(num_classes, 20, dim, seed=1)
    embeddings = embeddings.float()
    ours_emb = embeddings.clone().requires_grad_()
    theirs_emb = embeddings.clone().requires_grad_()
    ours_value = ours(ours_emb, labels)
    theirs_value = theirs(theirs_emb, labels)
    torch.testing.assert_close(ours_value, theirs_value, rtol=1e-5, atol=1e-5)
    ours_value.backward()
    theirs_value.backward()
    torch.testing.assert_close(ours_emb.grad, theirs_emb.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.proxies.grad, theirs.proxies.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("denominator", ["negatives", "all"])
@pytest.mark.parametrize("proxies_per_class", [1, 3])
def test_loss_matches_brute_force(denominator: str, proxies_per_class: int) -> None:
    loss = StaticProxyNCALoss(
        5, 4, scale=4.0, denominator=denominator, proxies_per_class=proxies_per_class
    )
    embeddings, labels = _batch(5, 12, 4, seed=2)
    expected = _brute_force(
        embeddings, labels, loss.proxies.detach().double(), proxies_per_class, 4.0, denominator
    )
    assert loss(embeddings, labels).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("denominator", ["negatives", "all"])
def test_label_smoothing_matches_brute_force(denominator: str) -> None:
    loss = StaticProxyNCALoss(
        4, 5, scale=9.0, denominator=denominator, proxies_per_class=2, label_smoothing=0.1
    )
    embeddings, labels = _batch(4, 10, 5, seed=3)
    expected = _brute_force(
        embeddings, labels, loss.proxies.detach().double(), 2, 9.0, denominator, 0.1
    )
    assert loss(embeddings, labels).item() == pytest.approx(expected, rel=1e-9)
    unsmoothed = StaticProxyNCALoss(4, 5, scale=9.0, denominator=denominator, proxies_per_class=2)
    unsmoothed.load_state_dict(loss.state_dict())
    assert unsmoothed(embeddings, labels).item() != pytest.approx(expected, rel=1e-3)


def test_assign_picks_the_nearest_proxy_of_the_class() -> None:
    loss = StaticProxyNCALoss(4, 6, proxies_per_class=3)
    embeddings, labels = _batch(4, 16, 6, seed=4)
    proxies = loss.proxies.detach().double()
    expected = [
        min(range(3 * c, 3 * c + 3), key=lambda k: _sq_dist(x, proxies[k]))
        for x, c in zip(embeddings, labels.tolist(), strict=True)
    ]
    assert loss.assign(embeddings, labels).tolist() == expected
    # Not simply the nearest proxy overall: some embedding lies nearer another class's proxy.
    overall = [min(range(12), key=lambda k: _sq_dist(x, proxies[k])) for x in embeddings]
    assert overall != expected


def test_paper_denominator_keeps_rewarding_a_correct_ranking() -> None:
    """An anchor on its proxy: "all" saturates below log(2), "negatives" goes below zero."""
    loss = StaticProxyNCALoss(3, 4, scale=9.0, denominator="negatives")
    on_proxy = loss.proxies.detach()[:1].clone()
    assert loss(on_proxy, torch.tensor([0])).item() < 0
    loss.denominator = "all"
    assert 0 <= loss(on_proxy, torch.tensor([0])).item() < math.log(2)


def test_spec_defaults_follow_the_paper_set_up() -> None:
    config = SPEC.default_config()
    assert SPEC.family == "proxy" and not SPEC.needs_positives
    assert config.m_per_class is None  # plain random batches
    assert config.denominator == "negatives" and config.proxies_per_class == 1
    assert config.loss_lr is not None and config.loss_lr > 1e-3  # above the default trunk lr
    method = build_method(SPEC, config, num_classes=7, embedding_size=5)
    assert isinstance(method.loss, ProxyLoss) and method.proxy_loss is method.loss
    assert method.loss.proxies.shape == (7, 5)
    assert method.loss.scale == config.scale
    assert SPEC.make_config({"proxies_per_class": "2"}).proxies_per_class == 2


def test_proxies_are_initialised_from_the_global_rng() -> None:
    torch.manual_seed(5)
    first = StaticProxyNCALoss(3, 4).proxies.detach().clone()
    torch.manual_seed(5)
    assert torch.equal(first, StaticProxyNCALoss(3, 4).proxies.detach())


@pytest.mark.parametrize(
    "values",
    [
        {"scale": 0},
        {"label_smoothing": 1.0},
        {"proxies_per_class": 0},
        {"denominator": "positives"},
        {"loss_lr": -1},
        {"no_such_key": 1},
    ],
)
def test_bad_config_values_raise_config_error(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config(values)
