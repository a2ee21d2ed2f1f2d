"""Code shared by the two Proxy-NCA methods (static and dynamic assignment).

Both compute the paper's NCA over proxies (Movshovitz-Attias et al. 2017, Sec. 3, "Proxy Ranking
Loss"): for an anchor x with positive proxy p+ and a set of negative proxies N,

    L(x) = -log( exp(-s d(x, p+)) / sum_{p in D} exp(-s d(x, p)) )

with d the squared Euclidean distance between the L2-normalised embedding and the L2-normalised
proxy, s the softmax scale, and D the denominator set: ``"negatives"`` is the paper's (D = N);
``"all"`` adds the positive (D = N + {p+}), the softmax that pytorch-metric-learning's
``ProxyNCALoss`` computes. The two differ by how hard the loss pushes once the positive wins:
with ``"negatives"`` the loss keeps decreasing (it can go negative), with ``"all"`` it saturates
at zero.

The scale s is not in the paper. The paper's bound (Sec. 4) has a scaling constant coming from the
norms of embeddings and proxies; reproductions found that unit-norm vectors with s = 1 train badly
(pytorch-metric-learning issue #206, powerful-benchmarker issue #90) and multiply embeddings and
proxies by 3 (dichotomies/proxy-nca), i.e. s = 3**2 = 9 on squared distances, which is our default.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal, Protocol

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from torch import nn

from dml_bench.errors import ConfigError
from dml_bench.methods.base import DeferredProxies, DiagnosticBatch, ProxyLoss

logger = logging.getLogger(__name__)

Denominator = Literal["negatives", "all"]

DEFAULT_SCALE = 9.0
"""Softmax scale on squared distances of unit vectors: the factor 3 of the reproductions, squared.

Squared distances of unit vectors lie in [0, 4], so with s = 1 the logits span at most 4 and the
softmax stays flat; reproductions multiply embeddings and proxies by 3 (dichotomies/proxy-nca,
Deep-Metric-Learning-Baselines), i.e. s = 9. On the default hershey run (300 steps, proxy lr
1e-2, seed 0) the scale mattered little: test Recall@1 0.677 / 0.705 / 0.679 for s = 1 / 3 / 9,
within what one seed can tell apart. 9 is kept for fidelity to the reproductions; sweep it.
"""

DEFAULT_PROXY_LR = 1e-1
"""Learning rate of the proxies: 100x the trunk's default Adam lr of 1e-3.

Proxies start at random (std 1 per coordinate, as pytorch-metric-learning) and must move across
the sphere within a few hundred steps, so they get a much larger step than the trunk (PML issue
#206). Only their direction matters, and Adam's step is about ``lr`` per coordinate, so 1e-1
rotates a proxy by a few degrees per step. Measured on the default hershey run (small CNN from
scratch, Adam 1e-3, batch 64, 300 steps, scale 9, seed 0), test Recall@1 was 0.624 / 0.679 /
0.769 for proxy lr 1e-3 / 1e-2 / 1e-1 (one seed each). Record and sweep it: results depend on it.
"""


def check_common_fields(
    scale: float, denominator: str, label_smoothing: float, loss_lr: float | None
) -> None:
    """Validate the fields both proxy methods share; raise ConfigError naming the fix."""
    if denominator not in ("negatives", "all"):
        raise ConfigError(
            f"denominator must be 'negatives' (the paper's NCA) or 'all' (softmax over all "
            f"proxies, as pytorch-metric-learning), got {denominator!r}."
        )
    if not scale > 0:
        raise ConfigError(
            f"scale must be a positive number (the softmax scale on squared distances), got "
            f"{scale!r}. Use e.g. --set proxy_nca.scale=9."
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(
            f"label_smoothing must be in [0, 1), got {label_smoothing!r}. Use 0 to switch it off."
        )
    check_loss_lr(loss_lr)


def check_loss_lr(loss_lr: float | None, field: str = "loss_lr", what: str = "proxies'") -> None:
    """Raise ConfigError unless ``loss_lr`` (``field``, the ``what`` learning rate) is None or > 0."""
    if loss_lr is not None and not loss_lr > 0:
        raise ConfigError(
            f"{field} (the {what} learning rate) must be positive or none, got {loss_lr!r}."
        )


def nca_over_proxies(
    logits: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    denominator: Denominator,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Per-row NCA loss given logits against every proxy.

    ``logits`` (N, P) are ``-s d(x, p)``; ``positive`` (N,) the index of each row's positive proxy;
    ``negatives`` (N, P) the negative proxies of each row: a boolean mask (each proxy once), or
    non-negative counts (proxy p stands ``negatives[n, p]`` times in the sum over negatives, as
    when several negative points share a proxy under dynamic assignment). Every row must hold at
    least one negative. With ``denominator="all"`` the positive joins the denominator once more.

    Label smoothing (the paper mentions none; reproductions use it): the target puts ``1 - eps`` on
    the positive and spreads ``eps`` evenly over the negatives (weighted by their counts), and the
    loss is the cross entropy ``-sum_j t_j log(exp(l_j) / sum_{k in D} exp(l_k))``. Unlike
    ``torch.nn.CrossEntropyLoss``, the positive gets no share of ``eps``. Since the targets sum to
    one, this is ``logsumexp_D(l) - (1 - eps) l_pos - eps mean_N(l)``.
    """
    positive_logit = logits.gather(1, positive.unsqueeze(1)).squeeze(1)
    weights = negatives.to(logits.dtype)
    if denominator == "all":
        weights = weights + F.one_hot(positive, logits.shape[1]).to(logits.dtype)
    # log(0) = -inf drops a proxy from the sum; log(count) repeats it count times.
    log_normaliser = torch.logsumexp(logits + weights.log(), dim=1)
    target_logit = positive_logit
    if label_smoothing > 0:
        negative_weights = negatives.to(logits.dtype)
        mean_negative_logit = (logits * negative_weights).sum(1) / negative_weights.sum(1)
        target_logit = (1 - label_smoothing) * positive_logit + label_smoothing * (
            mean_negative_logit
        )
    return log_normaliser - target_logit


class _HasProxies(Protocol):
    @property
    def proxies(self) -> torch.Tensor: ...


class NormalizedProxies:
    """``normalized_proxies()`` of the :class:`~dml_bench.methods.base.ProxyLoss` protocol: the
    loss's ``proxies`` (num_proxies, dim), each row L2-normalised. Mixed in before the loss class."""

    def normalized_proxies(self: _HasProxies) -> torch.Tensor:
        return F.normalize(self.proxies, p=2, dim=1)


class CosineProxies(NormalizedProxies):
    """The :class:`~dml_bench.methods.base.ProxyLoss` protocol's ``scale`` and
    ``normalized_proxies`` for a pytorch-metric-learning loss on cosine similarity.

    ``cosine_scale_field`` names the loss's scale on cosines (e.g. ``alpha``); ``scale`` is half of
    it, the softmax scale on squared distances of unit vectors with the same sharpness:
    ``exp(a cos) = exp(a) exp(-(a / 2) ||x - p||^2)``. Mixed in before the PML loss.
    """

    cosine_scale_field: ClassVar[str]

    @property
    def scale(self) -> float:
        """The softmax scale on squared distances equivalent to the cosine scale."""
        return float(getattr(self, self.cosine_scale_field)) / 2.0


class ProxyNCABase(NormalizedProxies, BaseMetricLossFunction):
    """What both proxy losses share: the proxies, the scale, distances and the calling convention.

    Built on pytorch-metric-learning's ``BaseMetricLossFunction`` so a subclass writes only
    ``compute_loss`` and reduction follows PML (mean over the per-anchor or per-pair terms). The
    distance is PML's ``LpDistance(power=2)`` with normalised inputs, which normalises both the
    embeddings and the proxies, as the paper's d does.
    """

    def __init__(
        self,
        num_proxies: int,
        embedding_size: int,
        *,
        scale: float,
        denominator: Denominator,
        label_smoothing: float,
    ) -> None:
        super().__init__(distance=LpDistance(normalize_embeddings=True, p=2, power=2))
        self.proxies = nn.Parameter(torch.empty(num_proxies, embedding_size))
        #: where this loss's random draws come from (``None``: the global torch RNG)
        self.generator: torch.Generator | None = None
        self.reset_parameters()
        self.scale = float(scale)
        self.denominator: Denominator = denominator
        self.label_smoothing = float(label_smoothing)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the proxies at random, std 1 per coordinate as PML (only the direction matters:
        proxies are normalised before use), from ``generator`` (a CPU generator; the training
        loop hands in one seeded by the run's seed), which later draws of this loss use too."""
        self.generator = generator
        noise = torch.randn(self.proxies.shape, generator=generator, device=_device_of(generator))
        self.proxies.copy_(noise.to(self.proxies.device))

    def noise_like_proxies(self) -> torch.Tensor:
        """Standard normal noise of the proxies' shape, from this loss's generator."""
        noise = torch.randn(
            self.proxies.shape, generator=self.generator, device=_device_of(self.generator)
        )
        return noise.to(self.proxies.device)

    def proxy_distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean distances (B, P) between normalised embeddings and proxies."""
        return self.distance(embeddings, self.proxies.to(embeddings.dtype))

    def zero_with_graph(self, embeddings: torch.Tensor) -> dict[str, dict[str, object]]:
        """A zero loss connected to embeddings and proxies, so backward still reaches both."""
        zero = (embeddings * 0).sum() + (self.proxies * 0).sum()
        return {"loss": {"losses": zero, "indices": None, "reduction_type": "already_reduced"}}

    def extra_repr(self) -> str:
        return (
            f"num_proxies={self.proxies.shape[0]}, embedding_size={self.proxies.shape[1]}, "
            f"scale={self.scale}, denominator={self.denominator!r}, "
            f"label_smoothing={self.label_smoothing}"
        )


def _device_of(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def proxy_diagnostics(loss: nn.Module, batch: DiagnosticBatch) -> dict[str, float]:
    """The RQ1 and RQ3 diagnostics of a proxy loss (``MethodSpec.diagnostics`` of both methods).

    RQ1: the paper's bound compared term by term on the diagnostic batch
    (:func:`~dml_bench.eval.diagnostics.proxy_bound_terms`); RQ3: how often proxies keep the order
    of distances on ``batch.num_samples`` triplets drawn from ``batch.generator``
    (:func:`~dml_bench.eval.diagnostics.order_agreement`), and the share of those triplets the
    proxies cannot order (:func:`~dml_bench.eval.diagnostics.order_ties`).

    Nothing (an empty dict: the row logs no diagnostics) while a :class:`DeferredProxies` loss
    has not set its proxies yet: at step 0 of a ``first_batch`` run those are placeholders,
    replaced by the first training step, and their order agreement (about 0.18-0.27 on the glyphs,
    with most triplets tied) said nothing about the method. RQ1 and RQ3 then start at the first
    row the method's own proxies logged.
    """
    from dml_bench.eval.diagnostics import (
        order_agreement,
        order_ties,
        proxy_bound_terms,
        sample_triplets,
    )

    if not isinstance(loss, ProxyLoss):
        raise TypeError(f"proxy diagnostics need a ProxyLoss, got {type(loss).__name__}")
    if isinstance(loss, DeferredProxies) and not loss.proxies_ready:
        return {}
    embeddings, labels = batch.embeddings, batch.labels
    terms = proxy_bound_terms(embeddings, labels, loss)
    triplets = sample_triplets(labels.cpu(), batch.num_samples, batch.generator).to(labels.device)
    terms["order_ties"] = order_ties(embeddings, labels, loss, triplets)
    terms["order_agreement"] = order_agreement(embeddings, labels, loss, triplets)
    return terms
