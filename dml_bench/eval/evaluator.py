"""The one evaluator: Recall@K, NMI and the Musgrave et al. metrics on test embeddings.

Protocol (docs/protocol.md): L2-normalise, let every item query all others (itself excluded), report
Recall@K for the dataset's K, NMI of k-means with k = number of classes, and P@1, R-Precision and
MAP@R ("A Metric Learning Reality Check", Musgrave et al. 2020), defined as in
pytorch-metric-learning's ``AccuracyCalculator`` (see :mod:`dml_bench.eval.metrics`).

Speed. A direct implementation retrieves the top ``max(K)`` neighbours of every query (1,000 for
Stanford Online Products); on CPU that top-k selection costs about twice the matrix product
itself. Recall@K only needs the **rank of each query's first same-class item**, and the Musgrave
metrics only the top ``R`` neighbours (R = class size - 1, at most 11 for SOP). So the scan of
:func:`dml_bench.eval.scan.scan_neighbours` keeps an exact top-``R`` list per query and, in the same
single pass over the similarities, the rank of the query's best class-mate: its similarity is
known before the pass (class-mates are few, so it is one small gather per block of queries), and
the scan keeps or counts the items above it. Both are exact, with the tie rule of
:func:`dml_bench.eval.knn.nearest_neighbors` (lower index first); the tests check them against
neighbour lists and brute-force loops. Nothing of size ``n x max(K)`` or ``chunk x n`` is held.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dml_bench.eval.clustering import clustering_nmi
from dml_bench.eval.knn import (
    EmbeddingShapeError,
    normalize,
    resolve_scan_rows,
    validate_embeddings,
)
from dml_bench.eval.metrics import (
    average_precision_at_r_per_query,
    precision_at_1_per_query,
    r_precision_per_query,
)
from dml_bench.eval.scan import NeighbourBlock, scan_neighbours

logger = logging.getLogger(__name__)


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
class _Totals:
    """Running sums over query chunks, so no per-query array of size n x K is kept."""

    recall_hits: dict[int, int]
    precision_at_1: float = 0.0
    r_precision: float = 0.0
    map_at_r: float = 0.0
    non_lone: int = 0


def _accumulate_block(
    totals: _Totals, block: NeighbourBlock, labels: torch.Tensor, num_relevant: torch.Tensor
) -> None:
    rank = block.first_positive_rank
    assert rank is not None  # the scan was given labels
    for k in totals.recall_hits:
        totals.recall_hits[k] += int((rank < k).sum())
    knn_labels = labels[block.indices]
    query_labels = labels[block.start : block.stop]
    num_relevant = num_relevant[block.start : block.stop]
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
    _, class_of, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    num_relevant = counts[class_of] - 1
    num_items = normalized.shape[0]
    list_length = min(max(1, int(num_relevant.max())), num_items - 1)
    rows = resolve_scan_rows(num_items, normalized.device, chunk_size)
    totals = _Totals(recall_hits=dict.fromkeys(ks, 0))
    for block in scan_neighbours(normalized, list_length, block_rows=rows, labels=labels):
        _accumulate_block(totals, block, labels, num_relevant)
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
    """Evaluate embeddings by the zero-shot protocol of docs/protocol.md.

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
