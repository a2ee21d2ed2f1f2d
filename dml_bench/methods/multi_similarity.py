"""Multi-Similarity loss with its miner (Wang, Han, Huang, Dong, Scott, "Multi-Similarity Loss with
General Pair Weighting for Deep Metric Learning", CVPR 2019).

A pair-based method, on the triplet side of the comparison in Movshovitz-Attias et al. 2017: it
needs positives inside each batch, so batches hold ``m_per_class`` images of each class. A thin
wrapper of pytorch-metric-learning's ``MultiSimilarityMiner`` (the paper's pair mining, Sec. 3.3:
keep a negative if its similarity exceeds the anchor's least similar positive minus ``epsilon``,
and a positive if its similarity is below the anchor's most similar negative plus ``epsilon``) and
``MultiSimilarityLoss`` (the soft weighting of the mined pairs, Eq. 9):

    L = 1/m sum_i [ 1/alpha log(1 + sum_{k in P_i} exp(-alpha (S_ik - lambda)))
                  + 1/beta  log(1 + sum_{k in N_i} exp( beta  (S_ik - lambda))) ]

on cosine similarities S, as in the paper (not a field: the loss is defined on it). PML's ``base``
is the paper's lambda.

Defaults: ``alpha`` = 2, ``beta`` = 50, ``base`` = 0.5, ``epsilon`` = 0.1, the values of the
authors' released code, which pytorch-metric-learning adopts as its defaults; the paper's CUB set-up
uses beta = 40 with the same base (``--set multi_similarity.beta=40``). ``m_per_class`` = 4, as the
other pair methods here (the paper samples several images per class; the number is dml-bench's).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import MultiSimilarityLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner

from dml_bench.errors import ConfigError
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import space_from_table

SEARCH_SPACE: dict[str, tuple[str, float, float, bool, str]] = {
    "alpha": (
        "float",
        0.5,
        10.0,
        True,
        "Wang et al. 2019 (and PML's default) alpha=2; log range around it ours",
    ),
    "beta": (
        "float",
        10.0,
        100.0,
        True,
        "Wang et al. 2019: beta=50 (authors' code), 40 on CUB; log range around them ours",
    ),
    "base": (
        "float",
        0.0,
        1.0,
        False,
        "Wang et al. 2019: lambda (PML base)=0.5; a cosine similarity, so [0, 1]",
    ),
    "epsilon": (
        "float",
        0.0,
        0.3,
        False,
        "Wang et al. 2019: mining margin epsilon=0.1; range ours",
    ),
}
"""Tuning search space: field -> (kind, low, high, log scale, citation)."""


@dataclass(frozen=True)
class MultiSimilarityConfig(MethodConfig):
    """``alpha``/``beta``: sharpness of the positive/negative soft weighting; ``base``: the
    similarity threshold lambda both are measured from; ``epsilon``: the miner's margin."""

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
    description="Multi-Similarity loss on the pairs its miner keeps (cosine similarity).",
    reference="Wang, Han, Huang, Dong, Scott, Multi-Similarity Loss with General Pair Weighting "
    "for Deep Metric Learning, CVPR 2019",
    config_cls=MultiSimilarityConfig,
    build_loss=build_loss,
    build_miner=build_miner,
    family="pair",
    needs_positives=True,
    search_space=space_from_table(SEARCH_SPACE),
)
