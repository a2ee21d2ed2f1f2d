"""Lifted structure: the wrapped PML loss against a brute-force loop of Oh Song et al.'s Eq. 4."""

from __future__ import annotations

import math

import pytest
import torch

from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.methods.lifted_structure import SPEC


def _brute_force(
    embeddings: torch.Tensor, labels: torch.Tensor, neg_margin: float, pos_margin: float
) -> float:
    """J_ij = [log sum_{k in N(i)} e^(a-D_ik) + sum_{l in N(j)} e^(a-D_jl) + D_ij - b]_+^2 / 2.

    Averaged over ordered positive pairs (each unordered pair appears twice, as in PML).
    """
    x = embeddings / embeddings.norm(dim=1, keepdim=True)
    n = len(labels)

    def d(i: int, j: int) -> float:
        return float((x[i] - x[j]).norm())

    terms = []
    for i in range(n):
        for j in range(n):
            if i == j or labels[i] != labels[j]:
                continue
            negatives = sum(
                math.exp(neg_margin - d(a, k))
                for a in (i, j)
                for k in range(n)
                if labels[k] != labels[a]
            )
            terms.append(max(0.0, math.log(negatives) + d(i, j) - pos_margin) ** 2 / 2)
    return sum(terms) / len(terms)


def test_loss_matches_brute_force() -> None:
    config = SPEC.make_config({"neg_margin": 0.8, "pos_margin": 0.1})
    method = build_method(SPEC, config, num_classes=3, embedding_size=4)
    assert method.miner is None
    g = torch.Generator().manual_seed(1)
    embeddings = torch.randn(9, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(3)
    expected = _brute_force(embeddings, labels, 0.8, 0.1)
    assert method.compute_loss(embeddings, labels).item() == pytest.approx(expected, rel=1e-6)


def test_defaults_are_the_original_margins() -> None:
    config = SPEC.default_config()
    loss = build_method(SPEC, config, 3, 4).loss
    assert (loss.neg_margin, loss.pos_margin) == (config.neg_margin, config.pos_margin) == (1, 0)
    assert loss.distance.power == 1 and loss.distance.normalize_embeddings


def test_margins_in_the_wrong_order_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="neg_margin"):
        SPEC.make_config({"neg_margin": 0.1, "pos_margin": 0.5})
