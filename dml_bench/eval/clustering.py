"""k-means and NMI for the clustering half of the protocol (docs/protocol.md, RQ4).

NMI is scikit-learn's ``normalized_mutual_info_score`` between k-means cluster ids and labels, with
k = the number of distinct labels, on the L2-normalised embeddings.

The k-means is a chunked Lloyd's algorithm in torch, on the embeddings' device, so it runs wherever
the model does and needs no optional dependency. Choices, measured at SOP scale (60,502 points,
11,316 clusters, 2 CPU cores; see benchmarks/README.md):

* **Init: k-means++** (D^2 sampling, seeded ``torch.Generator``) up to
  ``KMEANS_PLUS_PLUS_MAX_CLUSTERS`` clusters (CUB and Cars196: 98-100 test classes), where random
  starts often leave two centres in one class and none in another. Beyond that (SOP: 11,316
  classes), **random distinct points**, what faiss (and so pytorch-metric-learning) does
  everywhere: k-means++ needs k sequential passes over the data, 11,316 at SOP scale, which cost
  more than all Lloyd iterations together there, while with ~5 points per cluster the init barely
  moves NMI (measured: ours 0.872 vs faiss 0.870 on the SOP-shaped benchmark data).
  Each k-means++ centre is read off the cumulative D^2 weights at one of k uniforms drawn in a
  single batch (inverse-CDF sampling, :func:`weighted_index`), the distribution of scikit-learn's
  single-trial k-means++ (it adds greedy local trials, which we do not).
* **Backend: the same Lloyd loop everywhere; only the assignment kernel differs.** On CPU, for
  float32 points, the nearest-centroid search runs in faiss (``IndexFlatL2``, exact) when faiss is
  importable: measured at SOP scale on the shared 2-core CPU, one assignment pass costs ~2.8
  CPU-s in faiss against ~4-5 in torch at 64-d, and ~8 against ~13 at 512-d (benchmarks/README.md).
  On GPU tensors, for float64, or without faiss, it runs in torch, blockwise, on the points' device.
  Init, update, empty-cluster handling, stopping rule and seed are ours in both cases, so the two
  backends run the same algorithm and differ only by float rounding in the distances (and so,
  rarely, by which of two equidistant centroids a point joins). ``faiss.Kmeans`` itself is not
  used: it always runs all ``niter`` iterations, seeds its own generator and splits clusters its
  own way, so results would change with the backend.
* **Stop** when no assignment changes or after ``max_iter`` iterations (20, as
  pytorch-metric-learning passes to faiss). Stopping early is exact, not an approximation: once no
  assignment changes, the centroids and so every later iteration are the same, whereas
  ``faiss.Kmeans`` would run the remaining iterations to no effect (at SOP scale our loop converges
  in 2-8 iterations, see benchmarks/README.md).
* **Empty clusters** are re-seeded with the points farthest from their centroids, so k stays k.
* Assignment uses ``argmax(x . c - |c|^2 / 2)``, the Euclidean nearest centroid, computed in
  blocks of points so memory stays at ``chunk_size x k``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import Literal

import torch
from sklearn.metrics import normalized_mutual_info_score

from dml_bench.errors import UserError
from dml_bench.eval.knn import resolve_chunk_size

logger = logging.getLogger(__name__)

#: Up to this many clusters, ``init="auto"`` uses k-means++; above it, random distinct points.
KMEANS_PLUS_PLUS_MAX_CLUSTERS = 1024

Init = Literal["auto", "k-means++", "random"]
Backend = Literal["auto", "torch", "faiss"]


class ClusteringError(UserError):
    """k-means was asked for an impossible clustering."""


@dataclass(frozen=True)
class KMeansResult:
    """Cluster id per point, final centroids, Lloyd iterations run, and the summed squared error."""

    assignments: torch.Tensor
    centroids: torch.Tensor
    iterations: int
    inertia: float


def _assign(
    points: torch.Tensor, centroids: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every point and its squared distance, block by block."""
    half_sq_norms = 0.5 * (centroids * centroids).sum(dim=1)
    centroids_t = centroids.T.contiguous()
    assignments = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
    sq_distances = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    for start in range(0, points.shape[0], chunk_size):
        block = points[start : start + chunk_size]
        scores = torch.addmm(half_sq_norms, block, centroids_t, beta=-1.0)
        best, best_index = scores.max(dim=1)
        assignments[start : start + len(block)] = best_index
        sq_distances[start : start + len(block)] = (block * block).sum(dim=1) - 2.0 * best
    return assignments, sq_distances.clamp_(min=0.0)


def faiss_module() -> ModuleType | None:
    """The faiss module if it can be imported, else None (faiss is optional)."""
    try:
        return import_module("faiss")
    except ImportError:
        return None


def _assign_faiss(
    faiss: ModuleType, points: torch.Tensor, centroids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid by faiss's exact flat L2 search (CPU float32 points only)."""
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(centroids.contiguous().numpy())
    sq_distances, nearest = index.search(points.contiguous().numpy(), 1)
    assignments = torch.from_numpy(nearest[:, 0]).to(torch.long)
    return assignments, torch.from_numpy(sq_distances[:, 0]).clamp_(min=0.0)


def resolve_backend(points: torch.Tensor, backend: Backend) -> ModuleType | None:
    """faiss module for the assignment step, or None for torch (see the module docstring)."""
    if backend not in ("auto", "torch", "faiss"):
        raise ClusteringError(
            f"Unknown k-means backend {backend!r}. Use 'auto' (faiss on CPU float32 when "
            "installed, else torch), 'torch' or 'faiss'."
        )
    if backend == "torch":
        return None
    usable = points.device.type == "cpu" and points.dtype == torch.float32
    faiss = faiss_module() if usable else None
    if backend == "faiss" and faiss is None:
        raise ClusteringError(
            "k-means backend 'faiss' needs faiss installed and CPU float32 points, got "
            f"{points.dtype} points on {points.device} "
            f"({'faiss importable' if faiss_module() else 'faiss not importable'}). "
            "Install faiss-cpu, move the points to the CPU as float32, or use backend='auto'."
        )
    return faiss


def _update(
    points: torch.Tensor,
    assignments: torch.Tensor,
    sq_distances: torch.Tensor,
    num_clusters: int,
) -> torch.Tensor:
    """Centroids as cluster means; empty clusters take the points farthest from their centroid."""
    sums = torch.zeros(num_clusters, points.shape[1], dtype=points.dtype, device=points.device)
    sums.index_add_(0, assignments, points)
    counts = torch.bincount(assignments, minlength=num_clusters)
    centroids = sums / counts.clamp(min=1).to(points.dtype)[:, None]
    empty = (counts == 0).nonzero().squeeze(1)
    if len(empty):
        farthest = torch.sort(sq_distances, descending=True, stable=True).indices[: len(empty)]
        centroids[empty] = points[farthest]
        logger.debug("k-means: re-seeded %d empty clusters", len(empty))
    return centroids


def weighted_index(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Index ``j`` drawn with probability ``weights[j] / weights.sum()`` by inverting the
    cumulative weights at ``uniform`` (a 0-d tensor in ``[0, 1)``): the first ``j`` whose
    cumulative weight exceeds ``uniform * total``, so a zero weight is never drawn. All weights
    zero: a uniform index. The sums run in float64, so rounding moves a probability by at most
    about 1e-16 of the total. A 0-d long tensor, with no host synchronisation."""
    cumulative = torch.cumsum(weights, dim=0, dtype=torch.float64)
    total = cumulative[-1]
    drawn = torch.searchsorted(cumulative, (uniform * total).reshape(1), right=True)[0]
    uniform_index = (uniform * len(weights)).long()
    last = len(weights) - 1
    return torch.where(total > 0, drawn, uniform_index).clamp_(max=last)


def _kmeans_plus_plus(
    points: torch.Tensor, num_clusters: int, generator: torch.Generator
) -> torch.Tensor:
    """Indices of initial centres by D^2 sampling (Arthur & Vassilvitskii 2007): the first uniformly,
    each next one with probability proportional to its squared distance to the nearest centre
    chosen so far.

    The k uniforms come from ``generator`` in one draw and each centre is read off the cumulative
    D^2 weights (:func:`weighted_index`): the same distribution as a ``torch.multinomial`` call per
    centre, at a fraction of its cost (measured on 12,240 glyph embeddings, 612 centres, 1 thread:
    see benchmarks/README.md), and without a host sync per centre on a GPU.
    """
    num_points = points.shape[0]
    sq_norms = (points * points).sum(dim=1)
    uniforms = torch.rand(
        num_clusters, generator=generator, device=points.device, dtype=torch.float64
    )
    chosen = torch.empty(num_clusters, dtype=torch.long, device=points.device)
    closest = torch.full_like(sq_norms, float("inf"))
    for i in range(num_clusters):
        if i == 0:
            chosen[0] = (uniforms[0] * num_points).long().clamp_(max=num_points - 1)
        else:
            chosen[i] = weighted_index(closest, uniforms[i])
        centre = points[chosen[i]]
        distance = (sq_norms + sq_norms[chosen[i]] - 2.0 * (points @ centre)).clamp_(min=0.0)
        torch.minimum(closest, distance, out=closest)
    return chosen


def _initial_centres(
    points: torch.Tensor, num_clusters: int, init: Init, generator: torch.Generator
) -> torch.Tensor:
    if init == "k-means++" or (init == "auto" and num_clusters <= KMEANS_PLUS_PLUS_MAX_CLUSTERS):
        return points[_kmeans_plus_plus(points, num_clusters, generator)].clone()
    if init in ("auto", "random"):
        perm = torch.randperm(points.shape[0], generator=generator, device=points.device)
        return points[perm[:num_clusters]].clone()
    raise ClusteringError(f"Unknown k-means init {init!r}. Use 'auto', 'k-means++' or 'random'.")


def kmeans(
    points: torch.Tensor,
    num_clusters: int,
    *,
    seed: int = 0,
    max_iter: int = 20,
    chunk_size: int | None = None,
    init: Init = "auto",
    backend: Backend = "auto",
) -> KMeansResult:
    """Lloyd's k-means, deterministic for a seed (init and backend: see the module docstring)."""
    num_points = points.shape[0]
    if not 1 <= num_clusters <= num_points:
        raise ClusteringError(
            f"k-means needs 1 <= num_clusters <= number of points ({num_points}), got "
            f"{num_clusters}. Cluster more points or ask for fewer clusters."
        )
    rows = resolve_chunk_size(num_points, num_clusters, chunk_size, points.element_size())
    faiss = resolve_backend(points, backend)

    def assign(centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if faiss is not None:
            return _assign_faiss(faiss, points, centroids)
        return _assign(points, centroids, rows)

    generator = torch.Generator(device=points.device).manual_seed(seed)
    centroids = _initial_centres(points, num_clusters, init, generator)
    assignments, sq_distances = assign(centroids)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        centroids = _update(points, assignments, sq_distances, num_clusters)
        new_assignments, sq_distances = assign(centroids)
        changed = int((new_assignments != assignments).sum())
        assignments = new_assignments
        logger.debug("k-means iteration %d: %d assignments changed", iterations, changed)
        if changed == 0:
            break
    return KMeansResult(assignments, centroids, iterations, float(sq_distances.sum()))


def clustering_nmi(
    normalized: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int = 0,
    chunk_size: int | None = None,
    backend: Backend = "auto",
) -> float:
    """NMI between k-means clusters (k = number of labels) and labels (docs/protocol.md, RQ4).

    The NMI itself is scikit-learn's (arithmetic normalisation, as pytorch-metric-learning uses).
    """
    num_classes = int(torch.unique(labels).numel())
    result = kmeans(normalized, num_classes, seed=seed, chunk_size=chunk_size, backend=backend)
    return float(
        normalized_mutual_info_score(labels.cpu().numpy(), result.assignments.cpu().numpy())
    )
