"""NCA on the data points of the batch (Goldberger et al., NIPS 2004).

The loss Proxy-NCA approximates (Movshovitz-Attias et al. 2017, Sec. 3-4): each anchor's softmax
over the other batch points, ``-log sum_{y same class} softmax(-s d(x, .))_y``, with d the squared
Euclidean distance between L2-normalised embeddings. A thin wrapper of pytorch-metric-learning's
``NCALoss``. PML's ``softmax_scale`` defaults to 1; we default to 9, the same scale as Proxy-NCA,
so that the data-point and proxy losses differ only by the proxies (RQ1) and unit vectors are not
stuck with a near-uniform softmax (see ``dml_bench.methods._proxies.DEFAULT_SCALE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import NCALoss

from dml_bench.errors import ConfigError
from dml_bench.methods._proxies import DEFAULT_SCALE
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import NETWORK_LR, SearchParam


@dataclass(frozen=True)
class NCAConfig(MethodConfig):
    """``scale``: softmax scale on squared distances of L2-normalised embeddings."""

    m_per_class: int | None = 4
    scale: float = DEFAULT_SCALE

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ConfigError(f"nca.scale must be a positive number, got {self.scale!r}.")


def build_loss(num_classes: int, embedding_size: int, config: NCAConfig) -> NCALoss:
    return NCALoss(
        softmax_scale=config.scale,
        distance=LpDistance(normalize_embeddings=True, p=2, power=2),
    )


#: What ``dml-bench tune`` searches for NCA.
SEARCH_SPACE: tuple[SearchParam, ...] = (
    SearchParam(
        "scale",
        "float",
        1.0,
        16.0,
        log=True,
        citation="PML's NCALoss default softmax_scale 1 and the reproductions' 9 used for "
        "Proxy-NCA (same range as proxy_nca.scale, so the two differ only by the proxies); a "
        "glyph sweep on held-out train classes put the best at 2-4 (issue 18)",
    ),
    NETWORK_LR,
)


SPEC: MethodSpec[NCAConfig] = MethodSpec(
    name="nca",
    description="Neighbourhood components analysis over the data points of the batch.",
    reference="Goldberger, Roweis, Hinton, Salakhutdinov, Neighbourhood Components Analysis, "
    "NIPS 2004",
    config_cls=NCAConfig,
    build_loss=build_loss,
    build_miner=None,
    family="pair",
    needs_positives=True,
    search_space=SEARCH_SPACE,
)
