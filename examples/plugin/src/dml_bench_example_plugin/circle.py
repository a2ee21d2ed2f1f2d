"""Circle loss (Sun, Cheng, Zhang, Zhang, Zheng, Wang, Wei, "Circle Loss: A Unified Perspective of
Pair Similarity Optimization", CVPR 2020), as a dml-bench method.

A pair-based method, on the triplet side of the comparison in Movshovitz-Attias et al. 2017: it
needs positives inside each batch, so batches hold ``m_per_class`` images of each class. For each
anchor, with cosine similarities s_p to its positives and s_n to its negatives (Eq. 6 and 8):

    L = log(1 + sum_n exp(gamma a_n (s_n - m)) * sum_p exp(-gamma a_p (s_p - (1 - m))))

where ``a_p = [1 + m - s_p]_+`` and ``a_n = [s_n + m]_+`` are the self-paced weights (treated as
constants in the gradient). A thin wrapper of pytorch-metric-learning's ``CircleLoss``, averaged
over the anchors with a non-zero loss (its ``AvgNonZeroReducer``).

Every hyperparameter is an explicit config field, so a run's record says exactly what ran. The
defaults, m = 0.4 and gamma = 80, are the paper's values for fine-grained image retrieval (and
pytorch-metric-learning's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

from dml_bench.errors import ConfigError
from dml_bench.methods import MethodConfig, MethodSpec
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import CircleLoss


@dataclass(frozen=True)
class CircleConfig(MethodConfig):
    """``m``: the relaxation margin (the decision boundary's radius); ``gamma``: the scale."""

    m_per_class: int | None = 4
    m: float = 0.4
    gamma: float = 80.0

    def __post_init__(self) -> None:
        if not 0 <= self.m < 1:
            raise ConfigError(f"circle.m must lie in [0, 1), got {self.m!r}.")
        if not self.gamma > 0:
            raise ConfigError(f"circle.gamma must be positive, got {self.gamma!r}.")


def build_loss(num_classes: int, embedding_size: int, config: CircleConfig) -> CircleLoss:
    return CircleLoss(m=config.m, gamma=config.gamma, distance=CosineSimilarity())


SPEC: MethodSpec[CircleConfig] = MethodSpec(
    name="circle",
    description="Circle loss: self-paced weighting of every positive and negative pair.",
    reference="Sun et al., Circle Loss: A Unified Perspective of Pair Similarity Optimization, "
    "CVPR 2020",
    config_cls=CircleConfig,
    build_loss=build_loss,
    family="pair",
    needs_positives=True,
)
