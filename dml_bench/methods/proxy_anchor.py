"""Proxy-Anchor loss (Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020).

A proxy method, on Proxy-NCA's side of the comparison in Movshovitz-Attias et al. 2017: one learned
proxy per class, and each proxy is an *anchor* against the whole batch (Kim et al., Eq. 4):

    L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X+_p} exp(-alpha (s(x, p) - delta)))
      + 1/|P|  sum_{p in P}  log(1 + sum_{x in X-_p} exp( alpha (s(x, p) + delta)))

with s the cosine similarity, P+ the proxies of the classes present in the batch, X+_p / X-_p the
batch's points of p's class / of other classes. A thin wrapper of pytorch-metric-learning's
``ProxyAnchorLoss`` (cosine similarity, its ``DivisorReducer`` giving the two averages above,
proxies initialised ``kaiming_normal_(mode="fan_out")`` as in the authors' code, drawn from the
run's generator through ``reset_parameters``).

Defaults are the paper's implementation details: ``margin`` delta = 0.1, ``alpha`` = 32, and
the proxies' learning rate scaled up 100 times over the network's for faster convergence:
``loss_lr`` = 1e-1 against dml-bench's default Adam trunk lr of 1e-3. Left open here: the paper's batches sample classes with several
images each on some datasets and plain random batches on others; the default is random
(``m_per_class=None``, the loss needs no positives), and ``--set proxy_anchor.m_per_class=4`` gives
the other. The paper's warm-up (training only the new layers and proxies for the first epoch on
some datasets) is a trunk schedule the harness does not have; not done.

Diagnostics (RQ1 bound terms, RQ3 order agreement) read dml-bench's
:class:`~dml_bench.methods.base.ProxyLoss` protocol: ``assign`` is static (a point's proxy is its
class's), and ``scale`` is ``alpha / 2``. That is not a free choice: the diagnostics apply
``scale`` to squared Euclidean distances of unit vectors, and
``exp(alpha cos) = exp(alpha) exp(-(alpha / 2) ||x - p||^2)``, so ``alpha / 2`` gives their softmax
the sharpness of Proxy-Anchor's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch_metric_learning.losses import ProxyAnchorLoss

from dml_bench.errors import ConfigError
from dml_bench.methods._proxies import (
    DEFAULT_PROXY_LR,
    CosineProxies,
    check_loss_lr,
    proxy_diagnostics,
)
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import space_from_table

SEARCH_SPACE: dict[str, tuple[str, float, float, bool, str]] = {
    "margin": (
        "float",
        0.0,
        0.4,
        False,
        "Kim et al. 2020 use delta=0.1 and study its effect on accuracy over a range of small "
        "margins; this range (0 to 0.4) brackets the paper's value",
    ),
    "alpha": (
        "float",
        4.0,
        128.0,
        True,
        "Kim et al. 2020 use alpha=32 and study alpha over powers of two around it; log range ours",
    ),
    "loss_lr": (
        "float",
        1e-3,
        1.0,
        True,
        "Kim et al. 2020 scale the proxies' lr 100x the network's; dml-bench's proxy lr measurement "
        "(methods._proxies.DEFAULT_PROXY_LR); range 1x to 1000x the default trunk lr",
    ),
}
"""Tuning search space: field -> (kind, low, high, log scale, citation)."""


@dataclass(frozen=True)
class ProxyAnchorConfig(MethodConfig):
    """``margin`` (delta) and ``alpha`` (the scale) of Eq. 4; the paper's values are the defaults.

    ``loss_lr``: the proxies' learning rate, 100x the default trunk lr as in the paper.
    ``m_per_class``: ``None`` samples random batches (see the module docstring).
    """

    m_per_class: int | None = None
    loss_lr: float | None = DEFAULT_PROXY_LR
    margin: float = 0.1
    alpha: float = 32.0

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ConfigError(f"proxy_anchor.alpha must be positive, got {self.alpha!r}.")
        if not 0 <= self.margin < 1:
            raise ConfigError(
                f"proxy_anchor.margin is a cosine-similarity margin in [0, 1), got {self.margin!r}."
            )
        check_loss_lr(self.loss_lr, "proxy_anchor.loss_lr")


class DiagnosableProxyAnchorLoss(CosineProxies, ProxyAnchorLoss):
    """PML's Proxy-Anchor loss plus the :class:`~dml_bench.methods.base.ProxyLoss` protocol
    (``scale`` = ``alpha / 2``)."""

    cosine_scale_field = "alpha"

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PML's (and the authors') initialisation, Kaiming normal with ``mode="fan_out"``, drawn
        from ``generator`` (the run's, handed in by ``build_method``; see ``RandomInit``)."""
        torch.nn.init.kaiming_normal_(self.proxies, mode="fan_out", generator=generator)

    @torch.no_grad()
    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Static assignment: a point's proxy is its class's (one proxy per class)."""
        return labels.to(device=embeddings.device, dtype=torch.long)


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
    description=(
        "Proxy-Anchor: each class proxy is an anchor against the whole batch, cosine similarity "
        "with margin and scale; random batches."
    ),
    reference="Kim, Kim, Cho, Kwak, Proxy Anchor Loss for Deep Metric Learning, CVPR 2020",
    config_cls=ProxyAnchorConfig,
    build_loss=build_loss,
    build_miner=None,
    family="proxy",
    diagnostics=proxy_diagnostics,
    needs_positives=False,
    search_space=space_from_table(SEARCH_SPACE),
)
