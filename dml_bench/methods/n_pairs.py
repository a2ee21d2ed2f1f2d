"""Multi-class N-pair loss (Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
Objective", NIPS 2016), a baseline of the paper's Table 1 ("N-pairs").

A batch holds N classes with exactly two images each, an anchor x_i and a positive x_i+. Each
anchor is classified among the N positives by inner product (Sohn, Sec. 3, the "N-pair-mc" loss):

    L = 1/N sum_i log(1 + sum_{j != i} exp(f_i . f_j+ - f_i . f_i+))  +  reg

i.e. the cross entropy of the row of logits ``f_i . f_j+`` with target j = i. Sohn's embeddings
are *not* normalised: the similarity is the plain inner product, and the embeddings' squared L2
norms are penalised instead (Sohn, Sec. 3). A thin wrapper of pytorch-metric-learning's
``NPairsLoss`` with ``DotProductSimilarity(normalize_embeddings=False)`` (PML's default
normalises, which would make the logits cosines in [-1, 1] with no scale) and an
``LpRegularizer(power=2)`` on the batch's embeddings.

``l2_reg_weight`` is the weight lambda of the reference implementations (TensorFlow's
``npairs_loss`` and Paddle's ``npair_loss``, ``reg_lambda=0.002``), whose term is
``lambda / 4 (mean ||f_i||^2 + mean ||f_i+||^2) = lambda / 2 mean_batch ||f||^2``: PML's
regulariser (a mean over the batch) is weighted ``lambda / 2`` so the value is the same.

Batches: exactly two images per class (``m_per_class`` = 2, the only value accepted). PML would
accept more and keep one pair per class, silently discarding the rest of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning.distances import DotProductSimilarity
from pytorch_metric_learning.losses import NPairsLoss
from pytorch_metric_learning.regularizers import LpRegularizer

from dml_bench.errors import ConfigError
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import space_from_table

SEARCH_SPACE: dict[str, tuple[str, float, float, bool, str]] = {
    "l2_reg_weight": (
        "float",
        1e-4,
        1e-1,
        True,
        "Sohn 2016 (Sec. 3) penalises embedding norms; reference implementations default to "
        "lambda=0.002 (TensorFlow npairs_loss); log range around it ours",
    ),
}
"""Tuning search space: field -> (kind, low, high, log scale, citation)."""


@dataclass(frozen=True)
class NPairsConfig(MethodConfig):
    """``l2_reg_weight``: lambda of the squared-norm penalty on the embeddings (0 switches it off).

    ``m_per_class``: 2, the N-pair batch (N classes, an anchor and a positive each).
    """

    m_per_class: int | None = 2
    l2_reg_weight: float = 0.002

    def __post_init__(self) -> None:
        if self.m_per_class != 2:
            raise ConfigError(
                f"n_pairs needs exactly 2 images per class in a batch (an anchor and its "
                f"positive), got m_per_class={self.m_per_class!r}. Leave n_pairs.m_per_class at 2."
            )
        if not self.l2_reg_weight >= 0:
            raise ConfigError(
                f"n_pairs.l2_reg_weight must be non-negative, got {self.l2_reg_weight!r}."
            )


def build_loss(num_classes: int, embedding_size: int, config: NPairsConfig) -> NPairsLoss:
    # PML's distances normalise embeddings by default; Sohn's inner product does not.
    distance = DotProductSimilarity(normalize_embeddings=False)
    if config.l2_reg_weight == 0:
        return NPairsLoss(distance=distance)
    return NPairsLoss(
        distance=distance,
        embedding_regularizer=LpRegularizer(p=2, power=2),
        embedding_reg_weight=config.l2_reg_weight / 2,
    )


SPEC: MethodSpec[NPairsConfig] = MethodSpec(
    name="n_pairs",
    description=(
        "Multi-class N-pair loss: each anchor classified among the batch's positives by inner "
        "product, embedding norms penalised; 2 per class."
    ),
    reference="Sohn, Improved Deep Metric Learning with Multi-class N-pair Loss Objective, "
    "NIPS 2016",
    config_cls=NPairsConfig,
    build_loss=build_loss,
    build_miner=None,
    family="pair",
    needs_positives=True,
    search_space=space_from_table(SEARCH_SPACE),
)
