"""Lifted structured loss (Oh Song et al., CVPR 2016), a baseline of the paper's Table 1.

A thin wrapper of pytorch-metric-learning's ``LiftedStructureLoss``: for each positive pair (i, j),
``J = [log sum_{k in N(i) + N(j)} exp(neg_margin - d(., k)) + d(i, j) - pos_margin]_+^2 / 2``,
averaged over positive pairs, on every pair of the batch (no miner; the loss is its own smooth
mining). Distances are Euclidean between L2-normalised embeddings, PML's default; the original
paper used un-normalised embeddings with margin 1, which PML keeps as ``neg_margin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import LiftedStructureLoss

from dml_bench.errors import ConfigError
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import NETWORK_LR, SearchParam


@dataclass(frozen=True)
class LiftedStructureConfig(MethodConfig):
    """``neg_margin``/``pos_margin``: PML's margins (defaults 1 and 0, as the original paper).

    ``distance``: between L2-normalised embeddings.
    """

    m_per_class: int | None = 4
    neg_margin: float = 1.0
    pos_margin: float = 0.0
    distance: Literal["euclidean", "squared_euclidean"] = "euclidean"

    def __post_init__(self) -> None:
        if self.neg_margin <= self.pos_margin:
            raise ConfigError(
                f"lifted_structure.neg_margin ({self.neg_margin}) must exceed pos_margin "
                f"({self.pos_margin}), or negatives are never pushed past positives."
            )
        if self.distance not in ("euclidean", "squared_euclidean"):
            raise ConfigError(
                f"lifted_structure.distance must be 'euclidean' or 'squared_euclidean', got "
                f"{self.distance!r}."
            )


def build_loss(
    num_classes: int, embedding_size: int, config: LiftedStructureConfig
) -> LiftedStructureLoss:
    power = 1 if config.distance == "euclidean" else 2
    return LiftedStructureLoss(
        neg_margin=config.neg_margin,
        pos_margin=config.pos_margin,
        distance=LpDistance(normalize_embeddings=True, p=2, power=power),
    )


#: What ``dml-bench tune`` searches for the lifted structured loss. The ranges never overlap, so
#: every sampled pair satisfies ``neg_margin > pos_margin``.
SEARCH_SPACE: tuple[SearchParam, ...] = (
    SearchParam(
        "neg_margin",
        "float",
        0.5,
        2.0,
        citation="margin 1 of Oh Song et al. (CVPR 2016) and PML's LiftedStructureLoss default; "
        "distances of unit vectors lie in [0, 2]",
    ),
    SearchParam(
        "pos_margin",
        "float",
        0.0,
        0.4,
        citation="PML's LiftedStructureLoss default 0 (the original loss has none); kept below "
        "the smallest neg_margin",
    ),
    NETWORK_LR,
)


SPEC: MethodSpec[LiftedStructureConfig] = MethodSpec(
    name="lifted_structure",
    description="Lifted structured loss over all positive and negative pairs of the batch.",
    reference="Oh Song, Xiang, Jegelka, Savarese, Deep Metric Learning via Lifted Structured "
    "Feature Embedding, CVPR 2016",
    config_cls=LiftedStructureConfig,
    build_loss=build_loss,
    build_miner=None,
    family="pair",
    needs_positives=True,
    search_space=SEARCH_SPACE,
)
