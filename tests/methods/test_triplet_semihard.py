"""Triplet semi-hard: the wrapper wires PML as configured; value against a brute-force loop."""

from __future__ import annotations

import itertools

import pytest
import torch

from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.methods.triplet_semihard import SPEC


def _brute_force(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float, power: int
) -> float:
    """FaceNet's semi-hard triplets and hinge, averaged over the non-zero terms."""
    x = embeddings / embeddings.norm(dim=1, keepdim=True)

    def d(i: int, j: int) -> float:
        return float((x[i] - x[j]).norm()) ** power

    terms = []
    for a, p, n in itertools.permutations(range(len(labels)), 3):
        if labels[a] != labels[p] or labels[a] == labels[n]:
            continue
        gap = d(a, n) - d(a, p)
        if 0 < gap <= margin:
            terms.append(max(0.0, d(a, p) - d(a, n) + margin))
    nonzero = [t for t in terms if t > 0]
    return sum(nonzero) / len(nonzero)


@pytest.mark.parametrize(("distance", "power"), [("euclidean", 1), ("squared_euclidean", 2)])
def test_loss_after_semihard_mining_matches_brute_force(distance: str, power: int) -> None:
    config = SPEC.make_config({"margin": 0.3, "distance": distance})
    method = build_method(SPEC, config, num_classes=4, embedding_size=5)
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(12, 5, generator=g, dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(3)
    expected = _brute_force(embeddings, labels, 0.3, power)
    assert method.compute_loss(embeddings, labels).item() == pytest.approx(expected, rel=1e-6)


def test_library_defaults_are_explicit_and_used() -> None:
    config = SPEC.default_config()
    method = build_method(SPEC, config, num_classes=4, embedding_size=5)
    assert method.miner is not None
    assert method.miner.type_of_triplets == "semihard"
    assert method.miner.margin == method.loss.margin == config.margin == 0.2
    assert method.loss.distance.power == method.miner.distance.power == 1
    assert method.loss.distance.normalize_embeddings
    assert SPEC.needs_positives and SPEC.family == "pair" and config.m_per_class == 4


def test_bad_margin_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config({"margin": 0})
