"""The paper's bound: hand-made cases with known answers, a brute force of every term, and a
numeric check that the inequality as implemented holds on random unit vectors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml_bench.eval.bound import (
    NCA_EPS_FACTOR,
    TRIPLET_EPS_FACTOR,
    BoundInputs,
    bound_columns,
    nca_bound,
    triplet_bound,
)


def _unit(*angles_deg: float) -> torch.Tensor:
    radians = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([radians.cos(), radians.sin()], dim=1)


def _d(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).sum())


def _brute_nca(inputs: BoundInputs) -> list[tuple[float, float, float, float]]:
    """(data at unit scale, proxy at scale s, data at scale s, log n) per (x, y), by loops."""
    x, p, labels, s = inputs.points, inputs.point_proxies, inputs.labels.tolist(), inputs.scale
    rows = []
    for i in range(len(x)):
        for j in range(len(x)):
            negatives = [k for k in range(len(x)) if labels[k] != labels[i]]
            if j == i or labels[j] != labels[i] or not negatives:
                continue
            denominator = negatives + ([j] if inputs.denominator == "all" else [])

            def nca(
                points: torch.Tensor,
                scale: float,
                i: int = i,
                j: int = j,
                ks: list[int] = denominator,
            ) -> float:
                terms = [math.exp(-scale * _d(x[i], points[k])) for k in ks]
                return scale * _d(x[i], points[j]) + math.log(sum(terms))

            rows.append((nca(x, 1.0), nca(p, s), nca(x, s), math.log(len(denominator))))
    return rows


def test_equal_points_and_proxies_reach_the_bound_exactly() -> None:
    """Two points at (1, 0), two at (-1, 0), proxies on the points (eps = 0), s = 9: each pair
    has d(x, y) = 0 and two negatives at d = 4, so L_1 = log(2 e^-4) = -4 + log 2,
    L_9 = -36 + log 2, and alpha L_9 + (1 - alpha) log 2 = -4 + log 2: equality."""
    points = _unit(0.0, 0.0, 180.0, 180.0)
    inputs = BoundInputs(points, points.clone(), torch.tensor([0, 0, 1, 1]), 9.0)
    bound = nca_bound(inputs)
    assert bound.eps == 0.0 and bound.alpha == pytest.approx(1 / 9)
    assert bound.data.tolist() == pytest.approx([-4.0 + math.log(2)] * 4)
    assert bound.proxy.tolist() == pytest.approx([-36.0 + math.log(2)] * 4)
    assert bound.rhs.tolist() == pytest.approx([-4.0 + math.log(2)] * 4)
    assert (bound.data <= bound.rhs + 1e-12).all()


@pytest.mark.parametrize("denominator", ["negatives", "all"])
def test_every_term_matches_a_brute_force(denominator: str) -> None:
    g = torch.Generator().manual_seed(3)
    points = F.normalize(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=1)
    proxies = F.normalize(points + 0.3 * torch.randn(12, 5, generator=g, dtype=torch.float64))
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4])  # class 4 has no positive
    inputs = BoundInputs(points, proxies, labels, 4.0, denominator)  # type: ignore[arg-type]
    bound = nca_bound(inputs)
    expected = _brute_nca(inputs)
    assert len(bound.data) == len(expected) == 2 * 3 + 2 + 4 * 3 + 2
    data, proxy, data_at_scale, log_n = (
        torch.tensor(c, dtype=torch.float64) for c in zip(*expected, strict=True)
    )
    assert torch.allclose(bound.data, data) and torch.allclose(bound.proxy, proxy)
    assert torch.allclose(bound.data_at_scale, data_at_scale)
    assert torch.allclose(bound.log_term, (1 - 1 / 4) * log_n)
    assert bound.eps == pytest.approx(float((points - proxies).norm(dim=1).max()))
    assert NCA_EPS_FACTOR * bound.eps == pytest.approx(bound.eps_term)


def test_the_plain_check_fails_where_the_papers_bound_holds() -> None:
    """Proxies that rank better than the points (p(y) nearer x than y, p(z) farther than z):
    the proxy loss is below the data loss at the same scale, so the plain check fails, while the
    paper's bound, with alpha, the log term and eps, holds."""
    points = _unit(0.0, 60.0, 120.0, 150.0)
    proxies = _unit(0.0, 30.0, 180.0, 180.0)
    inputs = BoundInputs(points, proxies, torch.tensor([0, 0, 1, 1]), 9.0)
    columns = bound_columns(inputs)
    bound = nca_bound(inputs)
    anchor_zero = 0  # the pair (x = 0 deg, y = 60 deg)
    assert bound.proxy[anchor_zero] < bound.data_at_scale[anchor_zero]
    assert bound.data[anchor_zero] <= bound.rhs[anchor_zero]
    assert columns["bound_nca_held_plain"] < 1.0
    assert columns["bound_nca_held_paper"] == 1.0
    assert columns["bound_nca_held_paper_on_mean"] == 1.0


def test_triplet_form_against_loops_and_its_shares() -> None:
    g = torch.Generator().manual_seed(5)
    points = F.normalize(torch.randn(9, 4, generator=g, dtype=torch.float64), dim=1)
    proxies = F.normalize(points + 0.5 * torch.randn(9, 4, generator=g, dtype=torch.float64))
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    inputs = BoundInputs(points, proxies, labels, 9.0)
    eps = float((points - proxies).norm(dim=1).max())
    data, proxy = [], []
    for i in range(9):
        for j in range(9):
            for k in range(9):
                if i != j and labels[i] == labels[j] and labels[k] != labels[i]:
                    data.append(max(0.0, _d(points[i], points[j]) - _d(points[i], points[k]) + 0.2))
                    proxy.append(
                        max(0.0, _d(points[i], proxies[j]) - _d(points[i], proxies[k]) + 0.2)
                    )
    result = triplet_bound(inputs, margin=0.2, max_elements=50)  # several anchor blocks
    assert result.count == len(data) == 9 * 2 * 6
    assert result.data_mean == pytest.approx(sum(data) / len(data))
    assert result.proxy_mean == pytest.approx(sum(proxy) / len(proxy))
    slack = TRIPLET_EPS_FACTOR * eps
    held = sum(d <= p + slack for d, p in zip(data, proxy, strict=True)) / len(data)
    held_no_eps = sum(d <= p for d, p in zip(data, proxy, strict=True)) / len(data)
    assert result.held_paper == pytest.approx(held)
    assert result.held_paper_no_eps == pytest.approx(held_no_eps)


@pytest.mark.parametrize("denominator", ["negatives", "all"])
def test_the_inequality_as_implemented_holds_on_random_unit_vectors(denominator: str) -> None:
    """200 random batches: dimensions 2-8, proxies from tiny to large perturbations of their
    points, scales 1-40. Every (x, y, Z) and every triplet must satisfy the bound as computed
    (alpha = 1/s, (1 - alpha) log n, c eps with eps the batch max); the slack is needed."""
    g = torch.Generator().manual_seed(0)
    needed_eps = False
    for trial in range(200):
        dim = 2 + trial % 7
        labels = torch.randint(0, 4, (10,), generator=g)
        points = F.normalize(torch.randn(10, dim, generator=g, dtype=torch.float64), dim=1)
        noise = 10 ** (-3 + 3.5 * torch.rand((), generator=g, dtype=torch.float64))
        proxies = F.normalize(
            points + noise * torch.randn(10, dim, generator=g, dtype=torch.float64)
        )
        scale = float(1 + 39 * torch.rand((), generator=g))
        inputs = BoundInputs(points, proxies, labels, scale, denominator)  # type: ignore[arg-type]
        bound = nca_bound(inputs)
        assert (bound.data <= bound.rhs + 1e-9).all(), trial
        needed_eps |= bool((bound.data > bound.rhs - bound.eps_term).any())
        triplets = triplet_bound(inputs)
        assert triplets.count == 0 or triplets.held_paper == 1.0, trial
    assert needed_eps


def test_a_batch_without_positive_pairs_gives_nan() -> None:
    points = _unit(0.0, 90.0, 180.0)
    columns = bound_columns(BoundInputs(points, points, torch.tensor([0, 1, 2]), 9.0))
    assert math.isnan(columns["bound_nca_held_paper"])
    assert math.isnan(columns["bound_triplet_held_paper"])


def test_below_unit_scale_the_nca_form_is_not_a_bound_and_says_so() -> None:
    points = _unit(0.0, 10.0, 180.0, 170.0)
    columns = bound_columns(BoundInputs(points, points, torch.tensor([0, 0, 1, 1]), 0.5))
    assert columns["bound_alpha"] == 2.0
    assert math.isnan(columns["bound_nca_held_paper"])
    assert math.isfinite(columns["bound_nca_data"])
    assert columns["bound_triplet_held_paper"] == 1.0  # no alpha in the triplet form
