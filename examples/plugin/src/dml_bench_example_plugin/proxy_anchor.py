"""Proxy-Anchor loss (Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR
2020), as a dml-bench method.

A proxy method, on Proxy-NCA's side of the comparison in Movshovitz-Attias et al. 2017: one
learned proxy per class, each proxy used as an anchor against the batch (Eq. 4). A thin wrapper of
pytorch-metric-learning's ``ProxyAnchorLoss``; the proxies are an ordinary ``nn.Parameter``, which
the dml-bench loop optimises in their own parameter group (``--set proxy_anchor.loss_lr=...``; the
paper uses 100x the trunk's learning rate).

To take part in the paper's diagnostics (RQ1 bound terms, RQ3 order agreement) the loss also
implements dml-bench's :class:`~dml_bench.methods.ProxyLoss` protocol: ``assign`` is static (each
point's proxy is its class's), and ``scale`` is ``alpha / 2``. That is not a free choice: the
diagnostics apply ``scale`` to squared Euclidean distances of unit vectors, and
``exp(alpha * cos) = exp(alpha) * exp(-(alpha / 2) * ||x - p||^2)``, so ``alpha / 2`` gives the
softmax the same sharpness as Proxy-Anchor's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from dml_bench.errors import ConfigError
from dml_bench.methods import MethodConfig, MethodSpec
from pytorch_metric_learning.losses import ProxyAnchorLoss


@dataclass(frozen=True)
class ProxyAnchorConfig(MethodConfig):
    """``margin`` (delta) and ``alpha`` (the scale) of Eq. 4; the paper's values are the defaults.

    ``m_per_class``: ``None`` samples random batches; the paper samples classes with several
    images each, which ``--set proxy_anchor.m_per_class=4`` gives.
    """

    m_per_class: int | None = None
    margin: float = 0.1
    alpha: float = 32.0

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ConfigError(f"proxy_anchor.alpha must be positive, got {self.alpha!r}.")
        if not 0 <= self.margin < 1:
            raise ConfigError(
                f"proxy_anchor.margin is a cosine-similarity margin in [0, 1), got {self.margin!r}."
            )


class DiagnosableProxyAnchorLoss(ProxyAnchorLoss):
    """PML's Proxy-Anchor loss plus the :class:`~dml_bench.methods.ProxyLoss` protocol."""

    @property
    def scale(self) -> float:
        return float(self.alpha) / 2.0

    def normalized_proxies(self) -> torch.Tensor:
        return F.normalize(self.proxies, p=2, dim=1)

    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Static assignment: a point's proxy is its class's (Proxy-Anchor has one per class)."""
        return labels.to(device=self.proxies.device, dtype=torch.long)


def build_loss(
    num_classes: int, embedding_size: int, config: ProxyAnchorConfig
) -> DiagnosableProxyAnchorLoss:
    return DiagnosableProxyAnchorLoss(
        num_classes=num_classes,
        embedding_size=embedding_size,
        margin=config.margin,
        alpha=config.alpha,
    )


SPEC: MethodSpec[ProxyAnchorConfig] = MethodSpec(
    name="proxy_anchor",
    description="Proxy-Anchor: each class proxy is an anchor against the whole batch (CVPR 2020).",
    reference="Kim, Kim, Cho, Kwak, Proxy Anchor Loss for Deep Metric Learning, CVPR 2020",
    config_cls=ProxyAnchorConfig,
    build_loss=build_loss,
    family="proxy",
    needs_positives=False,
)
