"""Multi-Similarity loss with its miner (Wang et al., "Multi-Similarity Loss with General Pair
Weighting for Deep Metric Learning", CVPR 2019), as a dml-bench method.

A pair-based method, on the triplet side of the comparison in Movshovitz-Attias et al. 2017: it
needs positives inside each batch, so batches hold ``m_per_class`` images of each class. A thin
wrapper of pytorch-metric-learning's ``MultiSimilarityMiner`` (keeps the negatives harder than the
easiest positive plus ``epsilon`` and the positives harder than the hardest negative minus
``epsilon``, the paper's pair mining, Sec. 3.3) and ``MultiSimilarityLoss`` (soft weighting of the
mined pairs by their self- and relative similarities, Eq. 9). Both work on cosine similarity, as
in the paper; that is not a field because the loss is defined on it.

Every hyperparameter the library would otherwise default is an explicit config field, so a run's
record says exactly what ran. The defaults are pytorch-metric-learning's, which follow the
authors' code (alpha=2, beta=50, base=0.5, epsilon=0.1); the paper's CUB set-up uses beta=40 with
the same base, which ``--set multi_similarity.beta=40`` reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass

from dml_bench.errors import ConfigError
from dml_bench.methods import MethodConfig, MethodSpec
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import MultiSimilarityLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner


@dataclass(frozen=True)
class MultiSimilarityConfig(MethodConfig):
    """``alpha``/``beta``: sharpness of the positive/negative soft weighting; ``base``: the
    similarity margin (lambda) both are measured from; ``epsilon``: the miner's margin."""

    m_per_class: int | None = 4
    alpha: float = 2.0
    beta: float = 50.0
    base: float = 0.5
    epsilon: float = 0.1

    def __post_init__(self) -> None:
        for field in ("alpha", "beta"):
            value = getattr(self, field)
            if not value > 0:
                raise ConfigError(f"multi_similarity.{field} must be positive, got {value!r}.")
        if not -1.0 <= self.base <= 1.0:
            raise ConfigError(
                f"multi_similarity.base is a cosine similarity and must lie in [-1, 1], got "
                f"{self.base!r}."
            )
        if not self.epsilon >= 0:
            raise ConfigError(
                f"multi_similarity.epsilon must be non-negative, got {self.epsilon!r}."
            )


def build_loss(
    num_classes: int, embedding_size: int, config: MultiSimilarityConfig
) -> MultiSimilarityLoss:
    return MultiSimilarityLoss(
        alpha=config.alpha, beta=config.beta, base=config.base, distance=CosineSimilarity()
    )


def build_miner(config: MultiSimilarityConfig) -> MultiSimilarityMiner:
    return MultiSimilarityMiner(epsilon=config.epsilon, distance=CosineSimilarity())


SPEC: MethodSpec[MultiSimilarityConfig] = MethodSpec(
    name="multi_similarity",
    description="Multi-Similarity loss on the pairs its miner keeps (MS, CVPR 2019).",
    reference="Wang, Han, Huang, Dong, Scott, Multi-Similarity Loss with General Pair Weighting "
    "for Deep Metric Learning, CVPR 2019",
    config_cls=MultiSimilarityConfig,
    build_loss=build_loss,
    build_miner=build_miner,
    family="pair",
    needs_positives=True,
)
