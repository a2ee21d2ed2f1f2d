"""N-pairs: the wrapped PML loss against a brute-force loop of Sohn's N-pair-mc loss."""

from __future__ import annotations

import math

import pytest
import torch

from dml_bench.errors import ConfigError
from dml_bench.methods import build_method
from dml_bench.methods.n_pairs import SEARCH_SPACE, SPEC


def _brute_force(x: torch.Tensor, labels: torch.Tensor, reg_lambda: float) -> float:
    """Sohn 2016 on an N-pair batch, with the reference implementations' norm penalty.

    Anchor f_i is the first image of class i in the batch, f_i+ the second; inner products,
    no normalisation; ``reg_lambda / 4 * (mean ||f_i||^2 + mean ||f_i+||^2)``.
    """
    classes = list(dict.fromkeys(labels.tolist()))
    anchors = [x[labels.tolist().index(c)] for c in classes]
    positives = [x[[i for i, y in enumerate(labels.tolist()) if y == c][1]] for c in classes]
    n = len(classes)
    total = 0.0
    for i in range(n):
        own = float(anchors[i] @ positives[i])
        total += math.log1p(
            sum(math.exp(float(anchors[i] @ positives[j]) - own) for j in range(n) if j != i)
        )
    mean_sq = lambda vs: sum(float(v @ v) for v in vs) / len(vs)  # noqa: E731
    return total / n + reg_lambda / 4 * (mean_sq(anchors) + mean_sq(positives))


@pytest.mark.parametrize("reg_lambda", [0.0, 0.002, 0.5])
def test_loss_matches_brute_force(reg_lambda: float) -> None:
    method = build_method(SPEC, SPEC.make_config({"l2_reg_weight": reg_lambda}), 6, 5)
    g = torch.Generator().manual_seed(4)
    labels = torch.randperm(6, generator=g).repeat_interleave(2)
    x = 0.7 * torch.randn(12, 5, generator=g, dtype=torch.float64)
    assert method.compute_loss(x, labels).item() == pytest.approx(
        _brute_force(x, labels, reg_lambda), rel=1e-9
    )


def test_batches_hold_exactly_two_per_class() -> None:
    config = SPEC.default_config()
    assert SPEC.batch_needs(config).m_per_class == 2 and SPEC.needs_positives
    assert config.l2_reg_weight == 0.002 and SPEC.family == "pair"
    for m in (None, 3, 4):
        with pytest.raises(ConfigError, match="exactly 2"):
            SPEC.make_config({"m_per_class": m})
    with pytest.raises(ConfigError):
        SPEC.make_config({"l2_reg_weight": -1})
    assert set(SEARCH_SPACE) <= set(config.__dataclass_fields__)
