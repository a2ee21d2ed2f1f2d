"""Proxy diagnostics for the paper's RQ1 (the bound) and RQ3 (ordinal relations).

Movshovitz-Attias et al. (ICCV 2017), Sec. 4, bound the loss on data points by the loss on their
proxies, up to the proxy approximation error ``eps = max_x ||x - p(x)||``, and say the bound
tightens as training converges. :func:`proxy_bound_terms` measures both sides on one batch with
the same embeddings; :func:`order_agreement` measures how often proxies keep the order of
distances (``d(x,y) < d(x,z)`` vs ``d(x,p(y)) < d(x,p(z))``) on triplets from
:func:`sample_triplets`.

Conventions. d is the squared Euclidean distance between L2-normalised embeddings and
L2-normalised proxies (the loss's own, see ``dml_bench.methods._proxies``); eps is the plain
(not squared) Euclidean distance, as in the paper. p(x) is the proxy the loss assigns
(``Proxies.assign``: static = nearest proxy of x's class, dynamic = nearest proxy overall).
In-batch triplets (x, y, z): x and y distinct points of one class, z a point of another class.

The proxy terms substitute proxies for points *term by term* in the data terms: the same anchors,
the same (x, y) pairs and the same negatives z, each z replaced by p(z) (so a proxy shared by
several negatives counts once per negative). That is the comparison the bound is about; it is
not the training loss's value (which takes each negative proxy once and, for static Proxy-NCA,
all other classes' proxies, not only the batch's). Label smoothing is not applied here.

Everything runs under ``no_grad``, vectorised, on the embeddings' device. A term that the batch
cannot provide (no positive pair, e.g. a random batch of singletons) is ``nan``.

These are pure functions of tensors and a :class:`Proxies` view; a method that wants them in its
run's ``metrics.csv`` supplies them through its spec (``MethodSpec.diagnostics``; the proxy
methods do, in :func:`dml_bench.methods._proxies.proxy_diagnostics`). Nothing here knows methods.
"""

from __future__ import annotations

import logging
import math
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from dml_bench.eval.assignment import collapse_columns
from dml_bench.eval.bound import BoundInputs, bound_columns

logger = logging.getLogger(__name__)

Denominator = Literal["negatives", "all"]


class Proxies(Protocol):
    """What the diagnostics read of a proxy loss (any ``methods.base.ProxyLoss`` provides it).

    ``scale``: the softmax scale on squared distances. ``assign(embeddings, labels)``: the index
    of p(x) for each embedding. ``normalized_proxies()``: the proxies as the loss uses them.
    """

    @property
    def scale(self) -> float: ...

    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    def normalized_proxies(self) -> torch.Tensor: ...


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact pairwise squared Euclidean distances (no matmul shortcut, so d(x, x) is 0)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


@torch.no_grad()
def proxy_bound_terms(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxy_loss: Proxies,
    *,
    margin: float = 0.2,
    denominator: Denominator | None = None,
) -> dict[str, float]:
    """Data-point and proxy versions of NCA and triplet losses on one batch, and eps (RQ1).

    Returns ``proxy_nca_loss``, ``data_nca_loss`` (for each anchor x and same-class y:
    ``-log(exp(-s d(x,y)) / sum_z exp(-s d(x,z)))``, z over the batch's other-class points, plus
    the positive in the denominator if ``denominator == "all"``; averaged over (x, y) pairs; the
    proxy version replaces y and z by p(y) and p(z)), ``proxy_triplet_loss`` and
    ``data_triplet_loss`` (means over all in-batch triplets of
    ``[d(x,p(y)) - d(x,p(z)) + margin]_+`` and ``[d(x,y) - d(x,z) + margin]_+``),
    ``eps_mean`` and ``eps_max`` (``||x̂ - p̂(x)||`` over the batch); the paper's bound
    (``bound_*``, :func:`dml_bench.eval.bound.bound_columns`) and how spread the assignment is
    (``proxies_in_use``, ``shared_proxy_pairs``, :mod:`dml_bench.eval.assignment`). s is
    ``proxy_loss.scale``;
    ``denominator`` defaults to the loss's own (attribute ``denominator``), else the paper's
    ``"negatives"``.
    """
    convention = str(getattr(proxy_loss, "denominator", "negatives"))
    if denominator is not None:
        convention = denominator
    x = F.normalize(embeddings, p=2, dim=1)
    proxies = proxy_loss.normalized_proxies().to(x.dtype)
    assigned = proxy_loss.assign(embeddings, labels)
    data = squared_distances(x, x)
    # to_proxy_of[i, j] = d(x_i, p(x_j)): the data matrix with each point replaced by its proxy.
    to_proxy_of = squared_distances(x, proxies)[:, assigned]
    positive_pairs, negative_pairs = _pair_masks(labels)
    scale = float(proxy_loss.scale)
    eps = (x - proxies[assigned]).norm(dim=1)
    terms = {
        "proxy_nca_loss": _nca(to_proxy_of, positive_pairs, negative_pairs, scale, convention),
        "data_nca_loss": _nca(data, positive_pairs, negative_pairs, scale, convention),
        "proxy_triplet_loss": _triplet(to_proxy_of, positive_pairs, negative_pairs, margin),
        "data_triplet_loss": _triplet(data, positive_pairs, negative_pairs, margin),
        "eps_mean": float(eps.mean()) if len(eps) else math.nan,
        "eps_max": float(eps.max()) if len(eps) else math.nan,
    }
    bound_inputs = BoundInputs(x, proxies[assigned], labels, scale, _denominator(convention))
    terms.update(bound_columns(bound_inputs, margin))
    terms.update(collapse_columns(assigned, labels))
    return terms


def _denominator(convention: str) -> Denominator:
    return "all" if convention == "all" else "negatives"


def _pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, B) masks: distinct same-class pairs, and different-class pairs."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _nca(
    distances: torch.Tensor,
    positive_pairs: torch.Tensor,
    negative_pairs: torch.Tensor,
    scale: float,
    denominator: str,
) -> float:
    """Mean over (x, y) pairs of NCA with the negatives of row x; nan without a usable pair."""
    logits = -scale * distances
    negatives_lse = torch.logsumexp(logits.masked_fill(~negative_pairs, float("-inf")), dim=1)
    usable = positive_pairs & negative_pairs.any(dim=1, keepdim=True)
    if not bool(usable.any()):
        return math.nan
    normaliser = negatives_lse.unsqueeze(1).expand_as(logits)
    if denominator == "all":
        normaliser = torch.logaddexp(normaliser, logits)
    return float((normaliser - logits)[usable].mean())


def _triplet(
    distances: torch.Tensor,
    positive_pairs: torch.Tensor,
    negative_pairs: torch.Tensor,
    margin: float,
    max_elements: int = 2**24,
) -> float:
    """Mean hinge over all in-batch triplets (x, y, z); nan without a triplet.

    Anchors are taken in blocks so the (block, B, B) tensors stay under ``max_elements``: a
    diagnostic batch of a few hundred points would otherwise need gigabytes.
    """
    size = len(distances)
    block = max(1, max_elements // max(1, size * size))
    total = distances.new_zeros((), dtype=torch.float64)
    count = 0
    for start in range(0, size, block):
        rows = slice(start, start + block)
        triplets = positive_pairs[rows].unsqueeze(2) & negative_pairs[rows].unsqueeze(1)
        hinge = (distances[rows].unsqueeze(2) - distances[rows].unsqueeze(1) + margin).clamp_min(0)
        total += hinge[triplets].sum(dtype=torch.float64)
        count += int(triplets.sum())
    return float(total) / count if count else math.nan


def sample_triplets(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` triplets (anchor, same-class, different-class) of batch indices, shape (n, 3).

    The anchor is drawn uniformly among the points that have both a positive and a negative in the
    batch, then the positive and the negative uniformly among the anchor's (so this is not uniform
    over all triplets when classes differ in size). Random numbers come from ``generator`` on its
    own device; the result lies on ``labels.device``.
    """
    positive_pairs, negative_pairs = _pair_masks(labels)
    valid = torch.nonzero(positive_pairs.any(1) & negative_pairs.any(1)).squeeze(1)
    if len(valid) == 0:
        raise ValueError(
            "The labels hold no triplet: a triplet needs a class with two points and a point of "
            "another class. Sample the batch with m_per_class >= 2."
        )
    pick = torch.randint(len(valid), (n,), generator=generator, device=generator.device)
    anchors = valid[pick.to(labels.device)]
    positives = _uniform_choice(positive_pairs[anchors], generator)
    negatives = _uniform_choice(negative_pairs[anchors], generator)
    return torch.stack([anchors, positives, negatives], dim=1)


def _uniform_choice(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row, a column index drawn uniformly among the True entries (at least one)."""
    noise = torch.rand(mask.shape, generator=generator, device=generator.device).to(mask.device)
    return noise.masked_fill(~mask, -1.0).argmax(dim=1)


@torch.no_grad()
def order_agreement(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxy_loss: Proxies,
    triplets: torch.Tensor,
) -> float:
    """Fraction of triplets on which data and proxies order the distances alike (RQ3).

    A triplet (x, y, z) agrees when ``[d(x,y) < d(x,z)] == [d(x,p(y)) < d(x,p(z))]``. Ties count
    as "not less", so a collapsed dynamic assignment (p(y) == p(z)) agrees only where the data
    also fails to rank y first.
    """
    if len(triplets) == 0:
        return math.nan
    x = F.normalize(embeddings, p=2, dim=1)
    proxies = proxy_loss.normalized_proxies().to(x.dtype)
    assigned = proxy_loss.assign(embeddings, labels)
    anchor, positive, negative = triplets.to(labels.device).unbind(dim=1)
    data_order = _sq_norm(x[anchor] - x[positive]) < _sq_norm(x[anchor] - x[negative])
    proxy_order = _sq_norm(x[anchor] - proxies[assigned[positive]]) < _sq_norm(
        x[anchor] - proxies[assigned[negative]]
    )
    return float((data_order == proxy_order).float().mean())


@torch.no_grad()
def order_ties(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    proxy_loss: Proxies,
    triplets: torch.Tensor,
) -> float:
    """Fraction of triplets whose positive and negative share a proxy (``p(y) == p(z)``; RQ3).

    The proxies cannot order such a triplet at all, and :func:`order_agreement` counts it as
    agreeing only where the data does not rank y first: a share of ties above about half the
    triplets pulls agreement below chance (0.5) without any order being reversed. Static
    assignment with one proxy per class never ties; dynamic assignment ties when points of
    different classes share their nearest proxy (at the start, when the untrained network puts
    every point close together)."""
    if len(triplets) == 0:
        return math.nan
    assigned = proxy_loss.assign(embeddings, labels)
    _, positive, negative = triplets.to(labels.device).unbind(dim=1)
    return float((assigned[positive] == assigned[negative]).float().mean())


def _sq_norm(difference: torch.Tensor) -> torch.Tensor:
    return difference.pow(2).sum(dim=1)
