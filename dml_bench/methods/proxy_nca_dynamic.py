"""Proxy-NCA with dynamic proxy assignment (Movshovitz-Attias et al., ICCV 2017, Sec. 3).

This docstring is the reference for what dml-bench means by *dynamic assignment*.

Proxies. A set of ``P = round(proxies_per_class * num_classes)`` learned proxies (Python's
``round``; at least 2), with no class ownership. ``proxies_per_class`` may be a fraction (0.5:
half as many proxies as classes) or a multiple (2: twice as many).

Assignment. Every point x is assigned its nearest proxy, ``p(x) = argmin_p d(x, p)``, with d the
squared Euclidean distance between the L2-normalised embedding and the L2-normalised proxy. The
argmin is computed without gradient (it is piecewise constant); gradients reach the proxies and
the embeddings through the distances inside the loss.

Loss (the paper's triplet form with proxies). For every ordered pair (x, y) of *distinct* points
of the same class in the batch (x the anchor), the positive proxy is p(y) and the negative proxies
are the proxies of the batch's points of other classes:

    N(x, y) = { p(z) : z in batch, label(z) != label(x) }  minus  { p(y) }
    L(x, y) = -log( exp(-s d(x, p(y))) / sum_{p in D} exp(-s d(x, p)) )

with D = N(x, y) for ``denominator="negatives"`` (the paper's) or N(x, y) plus p(y) for ``"all"``.
Decisions the paper leaves open, made here:

* N(x, y) is a *set*: a proxy shared by several negatives appears once in the denominator (the
  paper sums over p(Z), the proxies of the negatives; counting a proxy once per point would
  weight it by how many batch points it happens to be nearest to).
* Collapse: dynamic assignment can give a negative z the same proxy as the positive y
  (p(z) == p(y)), most of all with fewer proxies than classes. That proxy is dropped from the
  negatives (it cannot be both the target and a competitor; keeping it would let the loss push a
  proxy away from itself). A pair whose negatives all collapse onto p(y) (N(x, y) empty) carries
  no ranking signal and is skipped.
* The loss is the mean over the kept pairs (several positives y sharing a proxy each count, like
  the paper's sum over triplets). With no kept pair the loss is a zero connected to the graph.
* Initialisation (``proxy_init``). With proxies drawn at random on the sphere, the untrained
  network's embeddings, which sit close together, all have the *same* nearest proxy: every
  negative collapses onto the positive, no pair is kept, the loss is zero and nothing learns (we
  measured exactly that on the glyph dataset). ``"first_batch"`` (the default) therefore draws the
  proxies from a Gaussian fitted, per dimension, to the first training batch's normalised
  embeddings, so nearest-proxy assignment starts spread over the data. ``"random"`` keeps the
  paper's plain random initialisation. The choice is recorded with the run's config.
* Label smoothing, if asked, moves ``label_smoothing`` of the target from p(y) to N(x, y) evenly
  (see :func:`dml_bench.methods._proxies.nca_over_proxies`).

Because the positive proxy comes from a same-class point of the batch, this method needs
positives inside each batch (m per class, default 4), unlike static Proxy-NCA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

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
from dml_bench.methods.proxy_nca import SEARCH_SPACE as PROXY_NCA_SPACE


@dataclass(frozen=True)
class DynamicProxyNCAConfig(MethodConfig):
    """Proxy-NCA (dynamic assignment); fields as ``proxy_nca`` except:

    ``proxies_per_class``: a float; the proxy set has ``round(proxies_per_class * num_classes)``
    proxies owned by no class (0.5, 1, 2 ... all allowed).
    ``m_per_class``: 4 (the positive proxy comes from a same-class point in the batch).
    """

    m_per_class: int | None = 4
    loss_lr: float | None = DEFAULT_PROXY_LR
    scale: float = DEFAULT_SCALE
    denominator: Denominator = "negatives"
    proxies_per_class: float = 1.0
    label_smoothing: float = 0.0
    proxy_init: Literal["first_batch", "random"] = "first_batch"

    def __post_init__(self) -> None:
        if self.proxy_init not in ("first_batch", "random"):
            raise ConfigError(
                f"proxy_init must be 'first_batch' or 'random', got {self.proxy_init!r}."
            )
        check_common_fields(self.scale, self.denominator, self.label_smoothing, self.loss_lr)
        if not self.proxies_per_class > 0:
            raise ConfigError(
                f"proxies_per_class must be a positive number (the proxy set has "
                f"round(proxies_per_class * num_classes) proxies), got {self.proxies_per_class!r}."
            )


def number_of_proxies(proxies_per_class: float, num_classes: int) -> int:
    """``round(proxies_per_class * num_classes)``; raise ConfigError below 2 (no negatives)."""
    count = round(proxies_per_class * num_classes)
    if count < 2:
        raise ConfigError(
            f"proxies_per_class={proxies_per_class} with {num_classes} classes gives {count} "
            f"proxies; dynamic Proxy-NCA needs at least 2 (a positive and a negative). Raise "
            f"--set proxy_nca_dynamic.proxies_per_class."
        )
    return count


class DynamicProxyNCALoss(ProxyNCABase):
    """Proxy-NCA over nearest-proxy assignment; implements :class:`~..base.ProxyLoss`.

    See the module docstring for the exact definition. ``indices_tuple`` is accepted for the
    calling convention and ignored (the method has no miner).
    """

    def __init__(
        self,
        num_proxies: int,
        embedding_size: int,
        *,
        scale: float = DEFAULT_SCALE,
        denominator: Denominator = "negatives",
        label_smoothing: float = 0.0,
        proxy_init: str = "random",
    ) -> None:
        super().__init__(
            num_proxies,
            embedding_size,
            scale=scale,
            denominator=denominator,
            label_smoothing=label_smoothing,
        )
        self.proxy_init = proxy_init
        # A buffer, so a checkpoint remembers that the proxies were already initialised.
        self.register_buffer("initialised", torch.tensor(proxy_init == "random"))
        self._init_checked = False

    @torch.no_grad()
    def initialise_from(self, embeddings: torch.Tensor) -> None:
        """Draw the proxies from a per-dimension Gaussian fitted to ``embeddings`` (normalised)."""
        normalized = F.normalize(embeddings.detach().float(), dim=1)
        mean, std = normalized.mean(dim=0), normalized.std(dim=0).clamp_min(1e-3)
        self.proxies.copy_(mean + std * self.noise_like_proxies())
        self.initialised.fill_(True)

    @torch.no_grad()
    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """p(x): the index of the nearest proxy overall (labels are not used)."""
        return self.proxy_distances(embeddings).argmin(dim=1)

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Any,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> dict[str, dict[str, Any]]:
        if not self._init_checked:  # one host sync per run, not per step
            if not bool(self.initialised):
                self.initialise_from(embeddings)
            self._init_checked = True
        distances = self.proxy_distances(embeddings)
        num_proxies = distances.shape[1]
        assigned = distances.detach().argmin(dim=1)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        anchor, positive_point = torch.nonzero(same & ~eye, as_tuple=True)
        # (B, P): proxy p is assigned to some point of a class other than b's.
        assigned_one_hot = F.one_hot(assigned, num_proxies).to(distances.dtype)
        negative_proxies = ((~same).to(distances.dtype) @ assigned_one_hot) > 0
        positive = assigned[positive_point]
        negatives = negative_proxies[anchor] & (
            torch.arange(num_proxies, device=labels.device).unsqueeze(0) != positive.unsqueeze(1)
        )
        kept = negatives.any(dim=1)
        anchor, positive_point = anchor[kept], positive_point[kept]
        if len(anchor) == 0:
            return self.zero_with_graph(embeddings)
        losses = nca_over_proxies(
            -self.scale * distances[anchor],
            positive[kept],
            negatives[kept],
            self.denominator,
            self.label_smoothing,
        )
        return {
            "loss": {
                "losses": losses,
                "indices": (anchor, positive_point),
                "reduction_type": "pos_pair",
            }
        }


def build_loss(
    num_classes: int, embedding_size: int, config: DynamicProxyNCAConfig
) -> DynamicProxyNCALoss:
    return DynamicProxyNCALoss(
        number_of_proxies(config.proxies_per_class, num_classes),
        embedding_size,
        scale=config.scale,
        denominator=config.denominator,
        label_smoothing=config.label_smoothing,
        proxy_init=config.proxy_init,
    )


SPEC: MethodSpec[DynamicProxyNCAConfig] = MethodSpec(
    name="proxy_nca_dynamic",
    description=(
        "Proxy-NCA, dynamic assignment: each point's proxy is its nearest proxy (no class "
        "ownership, any number of proxies); NCA of each anchor against p(positive) vs p(negatives)."
    ),
    reference=(
        "Movshovitz-Attias et al., No Fuss Distance Metric Learning using Proxies, ICCV 2017, "
        "Sec. 3 (dynamic proxy assignment)"
    ),
    config_cls=DynamicProxyNCAConfig,
    build_loss=build_loss,
    build_miner=None,
    family="proxy",
    diagnostics=proxy_diagnostics,
    needs_positives=True,
    proxy_count_field="proxies_per_class",
    proxy_assignment="dynamic",
    search_space=PROXY_NCA_SPACE,
)
