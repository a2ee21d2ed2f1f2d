"""Multi-Similarity: the wrapped PML miner and loss against a brute-force loop of Wang et al."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.methods.multi_similarity import SEARCH_SPACE, SPEC


def _brute_force(
    x: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, base: float, eps: float
) -> float:
    """MS mining (Wang et al. 2019, Sec. 3.3) and loss (Eq. 9), one anchor at a time."""
    x = F.normalize(x, dim=1)
    n = len(labels)
    total = 0.0
    for i in range(n):
        pos = [float(x[i] @ x[j]) for j in range(n) if j != i and labels[j] == labels[i]]
        neg = [float(x[i] @ x[j]) for j in range(n) if labels[j] != labels[i]]
        kept_neg = [s for s in neg if s + eps > min(pos)]
        kept_pos = [s for s in pos if s - eps < max(neg)]
        if not kept_neg or not kept_pos:
            continue  # PML's miner gives the anchor no pairs, so no loss term
        total += math.log1p(sum(math.exp(-alpha * (s - base)) for s in kept_pos)) / alpha
        total += math.log1p(sum(math.exp(beta * (s - base)) for s in kept_neg)) / beta
    return total / n


@pytest.mark.parametrize(
    "values",
    [{}, {"alpha": 1.5, "beta": 20.0, "base": 0.3, "epsilon": 0.05}],
    ids=["default", "set"],
)
def test_loss_after_mining_matches_brute_force(values: dict[str, float]) -> None:
    config = SPEC.make_config(values)
    method = build_method(SPEC, config, num_classes=6, embedding_size=8)
    labels = torch.arange(6).repeat_interleave(4)
    x = torch.randn(24, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = method.compute_loss(x, labels).item()
    want = _brute_force(x, labels, config.alpha, config.beta, config.base, config.epsilon)
    assert want > 0
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_defaults_and_needs() -> None:
    config = SPEC.default_config()
    assert (config.alpha, config.beta, config.base, config.epsilon) == (2.0, 50.0, 0.5, 0.1)
    needs = SPEC.batch_needs(config)
    assert (SPEC.family, needs.m_per_class, needs.needs_positives) == ("pair", 4, True)
    method = build_method(SPEC, config, 4, 4)
    assert method.miner is not None and method.miner.epsilon == 0.1
    assert set(SEARCH_SPACE) <= set(config.__dataclass_fields__)


@pytest.mark.parametrize(
    "values", [{"m_per_class": None}, {"beta": 0}, {"base": 1.5}, {"epsilon": -0.1}]
)
def test_bad_values_are_config_errors(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config(values)
