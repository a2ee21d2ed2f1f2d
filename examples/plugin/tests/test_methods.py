"""The plugin's method honours dml-bench's contract and computes what its paper defines.

``check_method`` is the conformance check dml-bench gives plugin authors (the built-ins pass the
same one); the other tests compare the loss against a brute-force loop written from the paper.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.testing import check_method

from dml_bench_example_plugin import circle


def test_conforms_to_the_method_contract() -> None:
    check_method(circle.SPEC)


def test_circle_declares_what_it_needs() -> None:
    spec = circle.SPEC
    needs = spec.batch_needs(spec.default_config())
    assert (spec.family, needs.m_per_class, needs.needs_positives) == ("pair", 4, True)
    with pytest.raises(ConfigError, match="m_per_class"):
        spec.make_config({"m_per_class": None})
    with pytest.raises(ConfigError, match="gamma"):
        spec.make_config({"gamma": 0})


def _brute_force_circle(x: torch.Tensor, labels: torch.Tensor, m: float, gamma: float) -> float:
    """Sun et al. 2020, Eq. 6 with the self-paced weights of Eq. 8, one anchor at a time; the
    mean over the anchors whose loss is not zero."""
    x = F.normalize(x, dim=1)
    n = len(labels)
    terms = []
    for i in range(n):
        pos = [float(x[i] @ x[j]) for j in range(n) if j != i and labels[j] == labels[i]]
        neg = [float(x[i] @ x[j]) for j in range(n) if labels[j] != labels[i]]
        neg_sum = sum(math.exp(gamma * max(0.0, s + m) * (s - m)) for s in neg)
        pos_sum = sum(math.exp(-gamma * max(0.0, 1 + m - s) * (s - (1 - m))) for s in pos)
        terms.append(math.log1p(neg_sum * pos_sum))
    nonzero = [t for t in terms if t > 0]
    return sum(nonzero) / len(nonzero)


@pytest.mark.parametrize("values", [{}, {"m": 0.25, "gamma": 16.0}], ids=["default", "set"])
def test_circle_matches_the_paper(values: dict[str, float]) -> None:
    spec = circle.SPEC
    config = spec.make_config(values)
    method = build_method(spec, config, num_classes=5, embedding_size=8)
    labels = torch.arange(5).repeat_interleave(3)
    x = torch.randn(15, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = method.compute_loss(x, labels).item()
    want = _brute_force_circle(x, labels, config.m, config.gamma)
    assert got == pytest.approx(want, rel=1e-6)
