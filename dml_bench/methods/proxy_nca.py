"""Proxy-NCA with static proxy assignment (Movshovitz-Attias et al., ICCV 2017, Sec. 3).

Each class owns ``proxies_per_class`` learned proxies. The positive proxy of an anchor x with
label c is the nearest of class c's proxies (Sec. 3, "Proxy Assignment and Triplet Selection",
static assignment; with one proxy per class, simply the class's proxy); the negatives are all
proxies of the other classes, so the loss needs no positives inside the batch and trains on plain
random batches, as the paper does.

Written here rather than wrapping pytorch-metric-learning's ``ProxyNCALoss``, which lacks what the
paper needs: the paper's denominator (negatives only), several proxies per class with the nearest
as positive, and assignment/normalised proxies for the diagnostics. With ``denominator="all"`` and
one proxy per class the value equals ``ProxyNCALoss(softmax_scale=scale)`` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dml_bench.errors import ConfigError
from dml_bench.methods._proxies import (
    DEFAULT_PROXY_LR,
    DEFAULT_SCALE,
    Denominator,
    ProxyNCABase,
    check_common_fields,
    nca_over_proxies,
    proxy_diagnostics,
)
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import NETWORK_LR, SearchParam


@dataclass(frozen=True)
class ProxyNCAConfig(MethodConfig):
    """Proxy-NCA (static assignment).

    ``scale``: softmax scale s, logits = -s ||x̂ - p̂||² (default 9 = 3², see ``_proxies``).
    ``denominator``: ``"negatives"`` (the paper's) or ``"all"`` (softmax, as PML).
    ``proxies_per_class``: proxies owned by each class; the positive is the nearest of them.
    ``label_smoothing``: mass moved from the positive to the negatives (0 = none, the paper).
    ``loss_lr``: the proxies' learning rate, 1e-1 = 100x the default Adam trunk lr (see
    ``_proxies.DEFAULT_PROXY_LR`` for the measurement behind it).
    ``m_per_class``: ``None`` = random batches (the paper's set-up).
    """

    m_per_class: int | None = None
    loss_lr: float | None = DEFAULT_PROXY_LR
    scale: float = DEFAULT_SCALE
    denominator: Denominator = "negatives"
    proxies_per_class: int = 1
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_common_fields(self.scale, self.denominator, self.label_smoothing, self.loss_lr)
        if self.proxies_per_class < 1:
            raise ConfigError(
                f"proxies_per_class must be an integer >= 1 for static assignment, got "
                f"{self.proxies_per_class!r}. For fewer proxies than classes use proxy_nca_dynamic."
            )


class StaticProxyNCALoss(ProxyNCABase):
    """Proxy-NCA with class-owned proxies; implements :class:`~dml_bench.methods.base.ProxyLoss`.

    Proxy ``k`` belongs to class ``k // proxies_per_class``. ``indices_tuple`` is accepted for the
    calling convention and ignored (the method has no miner).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        scale: float = DEFAULT_SCALE,
        denominator: Denominator = "negatives",
        proxies_per_class: int = 1,
        label_smoothing: float = 0.0,
    ) -> None:
        if num_classes < 2:
            raise ConfigError(
                f"Proxy-NCA needs at least 2 training classes (negatives), got {num_classes}."
            )
        super().__init__(
            num_classes * proxies_per_class,
            embedding_size,
            scale=scale,
            denominator=denominator,
            label_smoothing=label_smoothing,
        )
        self.num_classes = num_classes
        self.proxies_per_class = proxies_per_class
        proxy_class = torch.arange(num_classes).repeat_interleave(proxies_per_class)
        self.register_buffer("proxy_class", proxy_class, persistent=False)

    def _own_class(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, P) mask: proxy p belongs to the class of item b."""
        return self.proxy_class.to(labels.device).unsqueeze(0) == labels.unsqueeze(1)

    def _nearest_own_proxy(self, distances: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        masked = distances.detach().masked_fill(~self._own_class(labels), float("inf"))
        return masked.argmin(dim=1)

    @torch.no_grad()
    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """p(x): the index of the nearest proxy of x's class."""
        return self._nearest_own_proxy(self.proxy_distances(embeddings), labels)

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Any,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> dict[str, dict[str, Any]]:
        distances = self.proxy_distances(embeddings)
        positive = self._nearest_own_proxy(distances, labels)
        negatives = ~self._own_class(labels)
        losses = nca_over_proxies(
            -self.scale * distances, positive, negatives, self.denominator, self.label_smoothing
        )
        indices = torch.arange(len(losses), device=losses.device)
        return {"loss": {"losses": losses, "indices": indices, "reduction_type": "element"}}


def build_loss(num_classes: int, embedding_size: int, config: ProxyNCAConfig) -> StaticProxyNCALoss:
    return StaticProxyNCALoss(
        num_classes,
        embedding_size,
        scale=config.scale,
        denominator=config.denominator,
        proxies_per_class=config.proxies_per_class,
        label_smoothing=config.label_smoothing,
    )


#: What ``dml-bench tune`` searches for Proxy-NCA (static and dynamic assignment share it).
SEARCH_SPACE: tuple[SearchParam, ...] = (
    SearchParam(
        "scale",
        "float",
        1.0,
        16.0,
        log=True,
        citation="s = 1: the paper's unit-norm formulation; s = 9 = 3^2: the reproductions "
        "(dichotomies/proxy-nca; PML issue #206); a glyph sweep on held-out train classes put "
        "the best at 2-4 (issue 18); 1-16 spans all three",
    ),
    SearchParam(
        "loss_lr",
        "float",
        1e-3,
        1.0,
        log=True,
        citation="proxies need a larger lr than the trunk (PML issue #206); dml-bench measured "
        "1e-3 / 1e-2 / 1e-1 on the glyphs (_proxies.DEFAULT_PROXY_LR); up to 1 = 1000x the trunk",
    ),
    NETWORK_LR,
)


SPEC: MethodSpec[ProxyNCAConfig] = MethodSpec(
    name="proxy_nca",
    description=(
        "Proxy-NCA, static assignment: NCA of each embedding against learned class proxies "
        "(nearest proxy of its class vs all other classes' proxies); random batches."
    ),
    reference="Movshovitz-Attias et al., No Fuss Distance Metric Learning using Proxies, ICCV 2017",
    config_cls=ProxyNCAConfig,
    build_loss=build_loss,
    build_miner=None,
    family="proxy",
    diagnostics=proxy_diagnostics,
    needs_positives=False,
    proxy_count_field="proxies_per_class",
    proxy_assignment="static",
    search_space=SEARCH_SPACE,
)
