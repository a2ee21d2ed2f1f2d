"""The one evaluator: Recall@K, NMI and the Musgrave et al. metrics on test embeddings.

Protocol (PAPER.md): L2-normalise, let every item query all others (itself excluded), report
Recall@K for the dataset's K, NMI of k-means with k = number of classes, and P@1, R-Precision and
MAP@R ("A Metric Learning Reality Check", Musgrave et al. 2020), defined as in
pytorch-metric-learning's ``AccuracyCalculator`` (see :mod:`dml_bench.eval.metrics`).

Speed. A direct implementation retrieves the top ``max(K)`` neighbours of every query (1,000 for
Stanford Online Products); on CPU that top-k selection costs about twice the matrix product
itself. Recall@K only needs the **rank of the first same-class item**, and the Musgrave metrics only
the top ``R`` neighbours (R = class size - 1, at most 11 for SOP). So each block of similarities
gets one short top-k (``max(16, R_max)``); the first-positive rank is read from that list, and only
queries with no positive in it pay for a counting pass over their row (items more similar than
their best positive). Both are exact, with the tie rule of
:func:`dml_bench.eval.knn.nearest_neighbors` (lower index first); the tests check them against
neighbour lists and brute-force loops. Nothing of size ``n x max(K)`` is ever held.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from dml_bench.eval.clustering import clustering_nmi
from dml_bench.eval.knn import (
    EmbeddingShapeError,
    iter_similarity_chunks,
    normalize,
    resolve_chunk_size,
    topk_lowest_index_first,
    validate_embeddings,
)
from dml_bench.eval.metrics import (
    average_precision_at_r_per_query,
    precision_at_1_per_query,
    r_precision_per_query,
)

logger = logging.getLogger(__name__)

#: Neighbours retrieved per query at least (more when a class is larger): long enough that most
#: queries find their first positive in the list and skip the counting pass for Recall@K.
MIN_LIST_LENGTH = 16

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


def first_relevant_rank(sims: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's nearest same-class item among all other items.

    ``sims`` holds a block of query rows (self already at ``-inf``); ``members`` the column
    indices of each query's class (padding and the query itself point at ``-inf`` entries).
    Rank = items strictly more similar than the best positive, plus other-class items exactly as
    similar but with a lower index (the tie rule of :func:`nearest_neighbors`). Queries without
    a positive get ``NO_POSITIVE_RANK``, so they miss at every K, even K >= n.
    """
    member_sims = sims.gather(1, members)
    best = member_sims.max(dim=1, keepdim=True).values
    rank = (sims > best).sum(dim=1)
    has_positive = best[:, 0] > float("-inf")
    ties_at_best = (sims == best).sum(dim=1) > (member_sims == best).sum(dim=1)
    tied_rows = (ties_at_best & has_positive).nonzero().squeeze(1)
    if len(tied_rows):
        rank[tied_rows] += _tied_negatives_before(sims, members, best, tied_rows)
    return torch.where(has_positive, rank, torch.full_like(rank, NO_POSITIVE_RANK))


def _tied_negatives_before(
    sims: torch.Tensor, members: torch.Tensor, best: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """For rows whose best positive ties an other-class item: tied items of lower index."""
    row_sims, row_members, row_best = sims[rows], members[rows], best[rows]
    member_is_best = row_sims.gather(1, row_members) == row_best
    first_best = torch.where(
        member_is_best, row_members, torch.full_like(row_members, sims.shape[1])
    ).min(dim=1, keepdim=True)
    columns = torch.arange(sims.shape[1], device=sims.device)
    is_member = torch.zeros_like(row_sims, dtype=torch.bool).scatter_(1, row_members, True)
    tied_before = (row_sims == row_best) & ~is_member & (columns[None, :] < first_best.values)
    return tied_before.sum(dim=1)


@dataclass
class _Totals:
    """Running sums over query chunks, so no per-query array of size n x K is kept."""

    recall_hits: dict[int, int]
    precision_at_1: float = 0.0
    r_precision: float = 0.0
    map_at_r: float = 0.0
    non_lone: int = 0


def _ranks_from_neighbour_lists(
    relevant: torch.Tensor,
    sims: torch.Tensor,
    members: torch.Tensor,
) -> torch.Tensor:
    """First-positive rank per query, read from the top-L list where it holds a positive.

    Only queries whose nearest positive lies beyond the list pay for a counting pass over their
    row of similarities (:func:`first_relevant_rank`); with useful embeddings that is a minority.
    """
    in_list = relevant.any(dim=1)
    rank = relevant.to(torch.uint8).argmax(dim=1)
    missing = (~in_list).nonzero().squeeze(1)
    if len(missing):
        rank[missing] = first_relevant_rank(sims[missing], members[missing])
    return rank


def _accumulate_chunk(
    totals: _Totals,
    sims: torch.Tensor,
    start: int,
    classes: _ClassIndex,
    list_length: int,
) -> None:
    stop = start + sims.shape[0]
    _, neighbours = topk_lowest_index_first(sims, list_length)
    knn_labels = classes.labels[neighbours]
    query_labels = classes.labels[start:stop]
    relevant = knn_labels == query_labels[:, None]
    rank = _ranks_from_neighbour_lists(relevant, sims, classes.members(start, stop))
    for k in totals.recall_hits:
        totals.recall_hits[k] += int((rank < k).sum())
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
    list_length = min(max(MIN_LIST_LENGTH, max_relevant), num_items - 1)
    rows = resolve_chunk_size(num_items, num_items, chunk_size, normalized.element_size())
    totals = _Totals(recall_hits=dict.fromkeys(ks, 0))
    for start, sims in iter_similarity_chunks(normalized, rows, exclude_self=True):
        _accumulate_chunk(totals, sims, start, classes, list_length)
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
    embeddings' device in blocks of ``chunk_size`` queries (default: a 64 MB budget per block).
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
