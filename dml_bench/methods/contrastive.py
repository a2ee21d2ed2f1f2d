"""Contrastive loss (Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant
Mapping", CVPR 2006), in the form of the Reality Check (Musgrave, Belongie, Lim, "A Metric
Learning Reality Check", ECCV 2020), where, tuned like every other loss, it matched losses a
decade younger.

On every pair of the batch (no miner), with d the Euclidean distance between L2-normalised
embeddings:

    positive pair:  [d - pos_margin]_+        negative pair:  [neg_margin - d]_+

each averaged over its non-zero terms and the two averages summed: pytorch-metric-learning's
``ContrastiveLoss`` (``LpDistance(normalize_embeddings=True)``, ``AvgNonZeroReducer``), the loss the
Reality Check benchmarked. Where it departs from Hadsell et al.: they square both hinges
(``1/2 d^2`` and ``1/2 [m - d]^2_+``), use un-normalised embeddings and no positive margin, and sum
over pairs; the Reality Check's form adds ``pos_margin`` and averages over the active pairs, so the
loss does not shrink as more pairs become easy.

Defaults: ``pos_margin`` = 0 (every positive pair is pulled together, as in Hadsell et al.) and
``neg_margin`` = 1 (pytorch-metric-learning's defaults; on unit vectors a distance of 1 is an angle
of 60 degrees, while random directions in 64 dimensions sit near sqrt(2)). The Reality Check tuned
both margins per dataset by Bayesian search rather than fixing them; see ``SEARCH_SPACE``.
``m_per_class`` = 4, as the other pair methods here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import ContrastiveLoss

from dml_bench.errors import ConfigError
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import space_from_table

SEARCH_SPACE: dict[str, tuple[str, float, float, bool, str]] = {
    "pos_margin": (
        "float",
        0.0,
        1.0,
        False,
        "Musgrave et al. 2020 (Reality Check) tune pos_margin of PML's ContrastiveLoss; Hadsell "
        "et al. 2006 use none (0); distances of unit vectors lie in [0, 2]",
    ),
    "neg_margin": (
        "float",
        0.1,
        2.0,
        False,
        "Musgrave et al. 2020 (Reality Check) tune neg_margin of PML's ContrastiveLoss (PML "
        "default 1); distances of unit vectors lie in [0, 2]",
    ),
}
"""Tuning search space: field -> (kind, low, high, log scale, citation). Sampled pairs with
``pos_margin >= neg_margin`` are rejected by the config (a ConfigError)."""


@dataclass(frozen=True)
class ContrastiveConfig(MethodConfig):
    """``pos_margin``: distance under which a positive pair costs nothing; ``neg_margin``: distance
    beyond which a negative pair costs nothing (Euclidean, unit vectors: both in [0, 2])."""

    m_per_class: int | None = 4
    pos_margin: float = 0.0
    neg_margin: float = 1.0

    def __post_init__(self) -> None:
        if not (self.pos_margin < self.neg_margin and self.neg_margin > 0):
            raise ConfigError(
                f"contrastive needs pos_margin < neg_margin and neg_margin > 0 (distances of "
                f"unit vectors lie in [0, 2]), got pos_margin={self.pos_margin!r}, neg_margin={self.neg_margin!r}. "
                f"Use e.g. --set contrastive.pos_margin=0 --set contrastive.neg_margin=1."
            )


def build_loss(num_classes: int, embedding_size: int, config: ContrastiveConfig) -> ContrastiveLoss:
    return ContrastiveLoss(
        pos_margin=config.pos_margin,
        neg_margin=config.neg_margin,
        distance=LpDistance(normalize_embeddings=True, p=2, power=1),
    )


SPEC: MethodSpec[ContrastiveConfig] = MethodSpec(
    name="contrastive",
    description=(
        "Contrastive loss on every pair of the batch: positives pulled within pos_margin, "
        "negatives pushed beyond neg_margin (Reality Check form)."
    ),
    reference="Hadsell, Chopra, LeCun, Dimensionality Reduction by Learning an Invariant Mapping, "
    "CVPR 2006; Musgrave, Belongie, Lim, A Metric Learning Reality Check, ECCV 2020",
    config_cls=ContrastiveConfig,
    build_loss=build_loss,
    build_miner=None,
    family="pair",
    needs_positives=True,
    search_space=space_from_table(SEARCH_SPACE),
)
