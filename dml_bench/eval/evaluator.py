"""The one evaluator: Recall@K, NMI and the Musgrave et al. metrics on test embeddings.

Protocol (PAPER.md): L2-normalise, let every item query all others (itself excluded), report
Recall@K for the dataset's K, NMI of k-means with k = number of classes, and P@1, R-Precision and
MAP@R ("A Metric Learning Reality Check", Musgrave et al. 2020), defined as in
pytorch-metric-learning's ``AccuracyCalculator`` (see :mod:`dml_bench.eval.metrics`).

Speed. A direct implementation retrieves the top ``max(K)`` neighbours of every query (1,000 for
Stanford Online Products); on CPU that top-k selection costs about twice the matrix product
itself. Recall@K only needs the **rank of each query's first same-class item**, and the Musgrave
metrics only the top ``R`` neighbours (R = class size - 1, at most 11 for SOP). So the scan of
:func:`dml_bench.eval.knn.scan_neighbours` keeps an exact top-``R`` list per query and, in the same
single pass over the similarities, the rank of the query's best class-mate: its similarity is
known before the pass (class-mates are few, so it is one small gather per block of queries), and
the scan keeps or counts the items above it. Both are exact, with the tie rule of
:func:`dml_bench.eval.knn.nearest_neighbors` (lower index first); the tests check them against
neighbour lists and brute-force loops. Nothing of size ``n x max(K)`` or ``chunk x n`` is held.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from dml_bench.eval.clustering import clustering_nmi
from dml_bench.eval.knn import (
    EmbeddingShapeError,
    RowBlockNeighbours,
    normalize,
    resolve_scan_rows,
    scan_neighbours,
    similarity_margin,
    validate_embeddings,
)
from dml_bench.eval.metrics import (
    average_precision_at_r_per_query,
    precision_at_1_per_query,
    r_precision_per_query,
)

logger = logging.getLogger(__name__)

#: Rank given to queries whose class has no other member: larger than any K.
NO_POSITIVE_RANK = torch.iinfo(torch.int64).max


def _validate_labels(labels: torch.Tensor, num_items: int) -> None:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or len(labels) != num_items:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else None
        raise EmbeddingShapeError(
            f"Labels must be a 1-D tensor with one label per embedding ({num_items}), got shape "
            f"{shape}. Pass the class label of each embedded item, in the same order."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise EmbeddingShapeError(
            f"Labels must be integer class ids, got dtype {labels.dtype}. "
            "Convert them with `.long()`."
        )


def _validate_ks(ks: Sequence[int]) -> tuple[int, ...]:
    values = tuple(ks)
    if not values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in values):
        raise EmbeddingShapeError(
            f"ks must be a non-empty sequence of positive integers (the K of Recall@K), got "
            f"{ks!r}. Use e.g. (1, 2, 4, 8) for CUB and Cars196, (1, 10, 100, 1000) for SOP."
        )
    return values


@dataclass
class _ClassIndex:
    """Items grouped by class, to look up each query's fellow class members chunk by chunk."""

    labels: torch.Tensor
    order: torch.Tensor
    class_of: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor
    num_relevant: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.num_relevant = self.counts[self.class_of] - 1

    @classmethod
    def build(cls, labels: torch.Tensor) -> _ClassIndex:
        _, class_of, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        order = torch.argsort(class_of, stable=True)
        starts = torch.cumsum(counts, dim=0) - counts
        return cls(labels, order, class_of, starts, counts)

    def members(self, start: int, stop: int) -> torch.Tensor:
        """``(stop - start) x max_class_size`` indices of each query's class, padded with itself."""
        queries = torch.arange(start, stop, device=self.labels.device)
        classes = self.class_of[start:stop]
        offsets = torch.arange(int(self.counts.max()), device=self.labels.device)
        slots = self.starts[classes][:, None] + offsets[None, :]
        valid = offsets[None, :] < self.counts[classes][:, None]
        members = self.order[slots.clamp(max=len(self.order) - 1)]
        return torch.where(valid, members, queries[:, None])

    def best_positive_similarity(
        self, normalized: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        """Each query's highest similarity to a class-mate (``+inf`` where it has none).

        Computed by a small batched product, not by the scan's kernel, so it can differ from the
        scan's value by float rounding: the scan treats it as exact only up to
        :func:`dml_bench.eval.knn.similarity_margin`.
        """
        queries = normalized[start:stop]
        members = self.members(start, stop)
        sims = torch.bmm(normalized[members], queries[:, :, None])[:, :, 0]
        itself = members == torch.arange(start, stop, device=members.device)[:, None]
        best = sims.masked_fill(itself, float("-inf")).amax(dim=1)
        return best.masked_fill(self.num_relevant[start:stop] == 0, float("inf"))


@dataclass
class _Totals:
    """Running sums over query chunks, so no per-query array of size n x K is kept."""

    recall_hits: dict[int, int]
    precision_at_1: float = 0.0
    r_precision: float = 0.0
    map_at_r: float = 0.0
    non_lone: int = 0


def first_positive_ranks(
    block: RowBlockNeighbours, labels: torch.Tensor, watch: torch.Tensor, margin: float
) -> torch.Tensor:
    """0-based rank of each query's nearest same-class item among all other items.

    Rank = items strictly more similar than the best class-mate, plus other-class items exactly
    as similar with a lower index (the tie rule of :func:`dml_bench.eval.knn.nearest_neighbors`).
    The best class-mate's similarity is read from the scan's candidates (the scan's own kernel,
    so comparisons are consistent); items above it are the candidates above it, plus, for
    queries the scan counted, its ``watch_count`` (items above ``watch + margin``, not kept).
    Queries without a class-mate get ``NO_POSITIVE_RANK``, so they miss at every K.
    """
    num_rows = len(watch)
    rows, columns, values = block.rows, block.columns, block.values
    is_mate = labels[columns] == labels[block.start + rows]
    best = torch.full_like(watch, float("-inf"))
    best = best.scatter_reduce(0, rows[is_mate], values[is_mate], "amax")
    has_positive = torch.isfinite(watch)
    if bool(((best - watch).abs() > margin)[has_positive].any()):
        raise RuntimeError(
            "Internal error: a query's best class-mate similarity differs from its precomputed "
            "value by more than the rounding margin. Please report it with the embeddings' dtype, "
            "device and torch.get_float32_matmul_precision()."
        )
    row_best = best[rows]
    at_best = values == row_best
    no_column = torch.full_like(best, labels.shape[0], dtype=torch.long)
    first_best = no_column.scatter_reduce(
        0, rows[is_mate & at_best], columns[is_mate & at_best], "amin"
    )
    counted_elsewhere = block.counted[rows] & (values > watch[rows] + margin)
    above = (values > row_best) & ~counted_elsewhere
    tied_before = at_best & ~is_mate & (columns < first_best[rows])
    rank = block.watch_count + torch.bincount(rows[above | tied_before], minlength=num_rows)
    return torch.where(has_positive, rank, torch.full_like(rank, NO_POSITIVE_RANK))


def _accumulate_block(
    totals: _Totals,
    block: RowBlockNeighbours,
    classes: _ClassIndex,
    watch: torch.Tensor,
    margin: float,
    list_length: int,
) -> None:
    start, stop = block.start, block.start + len(block.counted)
    rank = first_positive_ranks(block, classes.labels, watch[start:stop], margin)
    for k in totals.recall_hits:
        totals.recall_hits[k] += int((rank < k).sum())
    top = block.positions < list_length
    neighbours = block.columns[top].view(stop - start, list_length)
    knn_labels = classes.labels[neighbours]
    query_labels = classes.labels[start:stop]
    num_relevant = classes.num_relevant[start:stop]
    keep = num_relevant > 0
    knn_labels, query_labels, num_relevant = (
        knn_labels[keep],
        query_labels[keep],
        num_relevant[keep],
    )
    totals.precision_at_1 += float(precision_at_1_per_query(knn_labels, query_labels).sum())
    totals.r_precision += float(r_precision_per_query(knn_labels, query_labels, num_relevant).sum())
    totals.map_at_r += float(
        average_precision_at_r_per_query(knn_labels, query_labels, num_relevant).sum()
    )
    totals.non_lone += int(keep.sum())


def retrieval_metrics(
    normalized: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int],
    *,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Recall@K for each K, P@1, R-Precision and MAP@R of L2-normalised embeddings."""
    classes = _ClassIndex.build(labels)
    num_items = normalized.shape[0]
    max_relevant = int(classes.num_relevant.max())
    list_length = min(max(1, max_relevant), num_items - 1)
    rows = resolve_scan_rows(num_items, normalized.device, chunk_size)
    totals = _Totals(recall_hits=dict.fromkeys(ks, 0))
    watch = torch.cat(
        [
            classes.best_positive_similarity(normalized, start, min(start + rows, num_items))
            for start in range(0, num_items, rows)
        ]
    )
    margin = similarity_margin(normalized)
    for block in scan_neighbours(normalized, list_length, watch=watch, block_rows=rows):
        _accumulate_block(totals, block, classes, watch, margin, list_length)
    num_lone = num_items - totals.non_lone
    if num_lone:
        logger.warning(
            "%d of %d queries have no other item of their class: they count as misses in "
            "Recall@K and are left out of P@1, R-Precision and MAP@R (as in "
            "pytorch-metric-learning's AccuracyCalculator)",
            num_lone,
            num_items,
        )
    result = {f"recall@{k}": hits / num_items for k, hits in totals.recall_hits.items()}
    denominator = totals.non_lone if totals.non_lone else float("nan")
    result["p@1"] = totals.precision_at_1 / denominator
    result["r_precision"] = totals.r_precision / denominator
    result["map@r"] = totals.map_at_r / denominator
    return result


def evaluate(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] = (1, 2, 4, 8),
    *,
    nmi: bool = True,
    seed: int = 0,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Evaluate embeddings by the zero-shot protocol of PAPER.md.

    Returns plain floats under ``recall@{k}`` for each k in ``ks``, ``nmi`` (when ``nmi`` is set;
    k-means seeded by ``seed``), ``p@1``, ``r_precision`` and ``map@r``. Everything runs on the
    embeddings' device in blocks of ``chunk_size`` queries (default: 256 on CPU, a 64 MB budget
    of similarities per block elsewhere).
    """
    validate_embeddings(embeddings)
    _validate_labels(labels, embeddings.shape[0])
    ks = _validate_ks(ks)
    with torch.no_grad():
        normalized = normalize(embeddings.detach())
        labels = labels.detach().to(normalized.device)
        result = retrieval_metrics(normalized, labels, ks, chunk_size=chunk_size)
        if nmi:
            result["nmi"] = clustering_nmi(normalized, labels, seed=seed)
    return result
