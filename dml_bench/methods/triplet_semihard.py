"""Triplet loss with semi-hard negative mining (Schroff et al., FaceNet, CVPR 2015).

One of the triplet-based baselines Proxy-NCA is compared with (Movshovitz-Attias et al. 2017,
Table 1, "Triplet Semihard"). A thin wrapper of pytorch-metric-learning's ``TripletMarginLoss``
and ``TripletMarginMiner(type_of_triplets="semihard")``: the miner keeps the triplets whose
negative is farther from the anchor than the positive but within the margin,
``0 < d(a,n) - d(a,p) <= margin``; the loss is ``[d(a,p) - d(a,n) + margin]_+`` averaged over
the non-zero terms (PML's ``AvgNonZeroReducer``). The library defaults that matter are explicit
fields; PML's loss margin defaults to 0.05 while FaceNet's (and PML's miner's) is 0.2, which we
use for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import TripletMarginMiner

from dml_bench.errors import ConfigError
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import NETWORK_LR, SearchParam

Distance = Literal["euclidean", "squared_euclidean"]


@dataclass(frozen=True)
class TripletSemihardConfig(MethodConfig):
    """``margin``: for the miner and the loss. ``distance``: between L2-normalised embeddings."""

    m_per_class: int | None = 4
    margin: float = 0.2
    distance: Distance = "euclidean"

    def __post_init__(self) -> None:
        if not self.margin > 0:
            raise ConfigError(f"triplet_semihard.margin must be positive, got {self.margin!r}.")
        if self.distance not in ("euclidean", "squared_euclidean"):
            raise ConfigError(
                f"triplet_semihard.distance must be 'euclidean' or 'squared_euclidean', got "
                f"{self.distance!r}."
            )


def normalized_lp_distance(distance: Distance) -> LpDistance:
    """PML's Euclidean distance (power 1) or squared (power 2) on L2-normalised embeddings."""
    return LpDistance(normalize_embeddings=True, p=2, power=1 if distance == "euclidean" else 2)


def build_loss(
    num_classes: int, embedding_size: int, config: TripletSemihardConfig
) -> TripletMarginLoss:
    return TripletMarginLoss(
        margin=config.margin,
        swap=False,
        smooth_loss=False,
        triplets_per_anchor="all",
        distance=normalized_lp_distance(config.distance),
    )


def build_miner(config: TripletSemihardConfig) -> TripletMarginMiner:
    return TripletMarginMiner(
        margin=config.margin,
        type_of_triplets="semihard",
        distance=normalized_lp_distance(config.distance),
    )


#: What ``dml-bench tune`` searches for the triplet loss.
SEARCH_SPACE: tuple[SearchParam, ...] = (
    SearchParam(
        "margin",
        "float",
        0.01,
        1.0,
        log=True,
        citation="FaceNet's 0.2 (Schroff et al. 2015) and PML's TripletMarginLoss default 0.05; "
        "distances of unit vectors lie in [0, 2], so margins above 1 leave few semi-hard negatives",
    ),
    NETWORK_LR,
)


SPEC: MethodSpec[TripletSemihardConfig] = MethodSpec(
    name="triplet_semihard",
    description="Triplet margin loss on semi-hard negatives mined in the batch (FaceNet).",
    reference="Schroff, Kalenichenko, Philbin, FaceNet, CVPR 2015",
    config_cls=TripletSemihardConfig,
    build_loss=build_loss,
    build_miner=build_miner,
    family="pair",
    needs_positives=True,
    search_space=SEARCH_SPACE,
)
