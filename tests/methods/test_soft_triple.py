"""SoftTriple: the wrapped PML loss and regulariser against a brute-force loop of Qian et al."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml_bench.errors import ConfigError
from dml_bench.methods import ProxyLoss, build_method
from dml_bench.methods.soft_triple import SEARCH_SPACE, SPEC, WithinClassCentersRegularizer


def _brute_force(
    x: torch.Tensor,
    labels: torch.Tensor,
    centres: torch.Tensor,
    k: int,
    la: float,
    gamma: float,
    delta: float,
    tau: float,
) -> float:
    """Qian et al. 2019: relaxed class similarity, softmax with margin, centre regulariser.

    ``centres`` is (num_classes * k, dim), centre j belonging to class j // k.
    """
    x, w = F.normalize(x, dim=1), F.normalize(centres, dim=1)
    num_classes = len(w) // k
    total = 0.0
    for xi, y in zip(x, labels.tolist(), strict=True):
        logits = []
        for c in range(num_classes):
            sims = [float(xi @ w[c * k + t]) for t in range(k)]
            weights = [math.exp(s / gamma) for s in sims]
            s_c = sum(a * s for a, s in zip(weights, sims, strict=True)) / sum(weights)
            logits.append(la * (s_c - (delta if c == y else 0.0)))
        total += math.log(sum(math.exp(v) for v in logits)) - logits[y]
    loss = total / len(labels)
    if tau > 0 and k > 1:
        reg = sum(
            math.sqrt(max(0.0, 2 - 2 * float(w[c * k + t] @ w[c * k + u])))
            for c in range(num_classes)
            for t in range(k)
            for u in range(t + 1, k)
        )
        loss += tau * reg / (num_classes * k * (k - 1))
    return loss


@pytest.mark.parametrize(
    "values",
    [{}, {"centers_per_class": 3, "la": 8.0, "gamma": 0.5, "margin": 0.1, "tau": 0.0}],
    ids=["default", "set"],
)
def test_loss_matches_brute_force(values: dict[str, float]) -> None:
    config = SPEC.make_config(values)
    method = build_method(SPEC, config, num_classes=4, embedding_size=6)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(4, (10,), generator=g)
    centres = method.loss.proxies.detach().double()
    expected = _brute_force(
        x, labels, centres, config.centers_per_class, config.la, config.gamma, config.margin,
        config.tau,
    )  # fmt: skip
    assert method.compute_loss(x, labels).item() == pytest.approx(expected, rel=1e-6)


def test_regulariser_equals_pml_sparse_centers_regularizer() -> None:
    from pytorch_metric_learning.regularizers import SparseCentersRegularizer

    weights = torch.randn(5 * 4, 6, generator=torch.Generator().manual_seed(10), requires_grad=True)
    ours = WithinClassCentersRegularizer(4)(weights)
    theirs = SparseCentersRegularizer(num_classes=5, centers_per_class=4)(weights)
    torch.testing.assert_close(ours, theirs)
    (ours_grad,) = torch.autograd.grad(ours, weights)
    (theirs_grad,) = torch.autograd.grad(theirs, weights)
    torch.testing.assert_close(ours_grad, theirs_grad)


def test_regulariser_is_counted_with_several_centres() -> None:
    with_reg = build_method(SPEC, SPEC.default_config(), 3, 4)
    without = build_method(SPEC, SPEC.make_config({"tau": 0.0}), 3, 4)
    without.loss.load_state_dict(with_reg.loss.state_dict())
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(7))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert with_reg.compute_loss(x, labels).item() > without.compute_loss(x, labels).item()


def test_proxy_protocol_assign_and_scale() -> None:
    method = build_method(SPEC, SPEC.make_config({"centers_per_class": 3}), 4, 5)
    loss = method.loss
    assert isinstance(loss, ProxyLoss) and method.proxy_loss is loss
    assert loss.proxies.shape == (12, 5) and loss.scale == pytest.approx(10.0)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(16, 5, generator=g)
    labels = torch.randint(4, (16,), generator=g)
    w = loss.normalized_proxies().detach()
    xn = F.normalize(x, dim=1)
    expected = [max(range(3 * c, 3 * c + 3), key=lambda j: float(xi @ w[j])) for xi, c in
                zip(xn, labels.tolist(), strict=True)]  # fmt: skip
    assert loss.assign(x, labels).tolist() == expected


def test_one_centre_is_a_normalised_softmax_with_the_diagnostics_scale() -> None:
    """K = 1, no margin: the loss is a softmax over la * cos = over -(la / 2) * squared distance."""
    config = SPEC.make_config({"centers_per_class": 1, "margin": 0.0})
    loss = build_method(SPEC, config, 5, 6).loss
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(9))
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    xn, w = F.normalize(x, dim=1), loss.normalized_proxies()
    expected = F.cross_entropy(-loss.scale * torch.cdist(xn, w) ** 2, labels)
    assert loss(x, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_defaults_are_the_papers() -> None:
    config = SPEC.default_config()
    assert (config.la, config.gamma, config.tau, config.margin) == (20.0, 0.1, 0.2, 0.01)
    assert config.centers_per_class == 10 and config.loss_lr == pytest.approx(0.1)
    assert config.m_per_class is None and not SPEC.needs_positives and SPEC.family == "proxy"
    assert set(SEARCH_SPACE) <= set(config.__dataclass_fields__)


@pytest.mark.parametrize(
    "values",
    [{"centers_per_class": 0}, {"la": 0}, {"gamma": -1}, {"tau": -0.1}, {"loss_lr": 0}],
)
def test_bad_values_are_config_errors(values: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config(values)


def test_centres_are_drawn_from_the_runs_generator_as_pml_draws_them() -> None:
    def built(global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)
        generator = torch.Generator().manual_seed(12)
        return build_method(SPEC, SPEC.default_config(), 3, 4, generator=generator).loss.fc

    first = built(0).detach()
    assert torch.equal(first, built(99).detach())  # not from the global RNG
    expected = torch.empty(4, 30)
    torch.nn.init.kaiming_uniform_(
        expected, a=math.sqrt(5), generator=torch.Generator().manual_seed(12)
    )
    assert torch.equal(first, expected)
