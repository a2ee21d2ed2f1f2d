"""NCA on data points: the wrapped PML loss against a brute-force loop of Goldberger et al."""

from __future__ import annotations

import math

import pytest
import torch

from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.methods.nca import SPEC


def _brute_force(embeddings: torch.Tensor, labels: torch.Tensor, scale: float) -> float:
    """-log of the probability that x picks a same-class neighbour, softmax over the others."""
    x = embeddings / embeddings.norm(dim=1, keepdim=True)
    n = len(labels)
    losses = []
    for i in range(n):
        weight = {
            k: math.exp(-scale * float(((x[i] - x[k]) ** 2).sum())) for k in range(n) if k != i
        }
        same = sum(w for k, w in weight.items() if labels[k] == labels[i])
        losses.append(-math.log(same / sum(weight.values())))
    return sum(losses) / n


@pytest.mark.parametrize("scale", [1.0, 9.0])
def test_loss_matches_brute_force(scale: float) -> None:
    method = build_method(SPEC, SPEC.make_config({"scale": scale}), 3, 4)
    g = torch.Generator().manual_seed(2)
    embeddings = torch.randn(12, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(4)
    expected = _brute_force(embeddings, labels, scale)
    assert method.compute_loss(embeddings, labels).item() == pytest.approx(expected, rel=1e-6)


def test_scale_matches_proxy_nca_by_default() -> None:
    from dml_bench.methods.proxy_nca import SPEC as PROXY_NCA

    assert SPEC.default_config().scale == PROXY_NCA.default_config().scale
    assert build_method(SPEC, SPEC.default_config(), 3, 4).loss.softmax_scale == 9.0


def test_non_positive_scale_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SPEC.make_config({"scale": -1})
