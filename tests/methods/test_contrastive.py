"""Contrastive: the wrapped PML loss against a brute-force loop over the batch's pairs."""

from __future__ import annotations

import pytest
import torch

from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.methods.contrastive import SEARCH_SPACE, SPEC


def _avg_nonzero(terms: list[float]) -> float:
    nonzero = [t for t in terms if t > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def _brute_force(x: torch.Tensor, labels: torch.Tensor, pos_m: float, neg_m: float) -> float:
    """Hinges on Euclidean distances of unit vectors over ordered pairs, each kind averaged over
    its non-zero terms (the Reality Check's form)."""
    x = x / x.norm(dim=1, keepdim=True)
    pos, neg = [], []
    for i in range(len(labels)):
        for j in range(len(labels)):
            if i == j:
                continue
            d = float((x[i] - x[j]).norm())
            if labels[i] == labels[j]:
                pos.append(max(0.0, d - pos_m))
            else:
                neg.append(max(0.0, neg_m - d))
    return _avg_nonzero(pos) + _avg_nonzero(neg)


@pytest.mark.parametrize(("pos_m", "neg_m"), [(0.0, 1.0), (0.3, 1.2), (-0.2, 0.4)])
def test_loss_matches_brute_force(pos_m: float, neg_m: float) -> None:
    method = build_method(SPEC, SPEC.make_config({"pos_margin": pos_m, "neg_margin": neg_m}), 4, 6)
    assert method.miner is None
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(4).repeat_interleave(3)
    x = torch.randn(12, 6, generator=g, dtype=torch.float64)
    expected = _brute_force(x, labels, pos_m, neg_m)
    assert expected > 0
    assert method.compute_loss(x, labels).item() == pytest.approx(expected, rel=1e-9)


def test_defaults() -> None:
    config = SPEC.default_config()
    assert (config.pos_margin, config.neg_margin, config.m_per_class) == (0.0, 1.0, 4)
    loss = build_method(SPEC, config, 3, 4).loss
    assert loss.distance.normalize_embeddings and loss.distance.power == 1
    assert SPEC.family == "pair" and SPEC.needs_positives
    assert set(SEARCH_SPACE) <= set(config.__dataclass_fields__)


@pytest.mark.parametrize(
    "values", [{"pos_margin": 1.0, "neg_margin": 0.5}, {"neg_margin": 0.0, "pos_margin": -1.0}]
)
def test_margins_in_the_wrong_order_are_config_errors(values: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="pos_margin < neg_margin"):
        SPEC.make_config(values)
