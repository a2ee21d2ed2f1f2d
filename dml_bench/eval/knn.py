"""Exact nearest neighbours by cosine similarity, in query chunks.

The protocol (docs/protocol.md, "Protocol") ranks every test embedding against all others after L2
normalisation, so cosine similarity and Euclidean distance give the same order. Everything is a
matrix product on the embeddings' own device, one block of queries at a time
(:func:`dml_bench.eval.scan.scan_neighbours`), so memory never reaches the full ``n x n``
matrix.

Ties are broken deterministically: at equal similarity the item with the lower index ranks first.
``torch.topk`` makes no such promise, so :func:`topk_lowest_index_first` detects ties (rare with
real embeddings) and resolves them with a stable sort.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from dml_bench.errors import UserError
from dml_bench.eval.scan import SCAN_ROWS, scan_neighbours

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "EmbeddingShapeError",
    "nearest_neighbors",
    "neighbors_of",
    "normalize",
    "resolve_chunk_size",
    "resolve_scan_rows",
    "topk_lowest_index_first",
    "validate_embeddings",
]

#: Bytes one chunk of query-by-reference similarities may occupy when ``chunk_size`` is not given.
#: 64 MB (277 queries at SOP scale): large enough that per-block overhead (thread start-up of each
#: op) stays small, small enough to keep peak memory far below the 2 GB goal of benchmarks/eval.py;
#: 16 MB to 256 MB blocks measured within noise of each other for the matrix product on 2 cores.
DEFAULT_CHUNK_BYTES = 64 * 2**20


class EmbeddingShapeError(UserError):
    """Embeddings or labels have the wrong shape, type or values for evaluation."""


def validate_embeddings(embeddings: torch.Tensor) -> None:
    """Raise a :class:`EmbeddingShapeError` unless ``embeddings`` is a finite float ``n x d`` matrix."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else None
        raise EmbeddingShapeError(
            f"Embeddings must be a 2-D tensor (n items x d dimensions), got shape {shape}. "
            "Stack the per-item embedding vectors into one tensor before evaluating."
        )
    if not embeddings.is_floating_point():
        raise EmbeddingShapeError(
            f"Embeddings must be a floating-point tensor, got dtype {embeddings.dtype}. "
            "Convert them with `.float()` first."
        )
    if embeddings.shape[0] < 2:
        raise EmbeddingShapeError(
            f"Retrieval needs at least 2 embeddings (each query is compared with the others), "
            f"got {embeddings.shape[0]}. Evaluate on a larger set."
        )
    if not bool(torch.isfinite(embeddings).all()):
        raise EmbeddingShapeError(
            "Embeddings contain NaN or infinite values, so no neighbour order exists. "
            "Check the model for a diverged loss (non-finite outputs) before evaluating."
        )


def normalize(embeddings: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows, in float32 unless the input is float64 (docs/protocol.md evaluation protocol).

    Half precision would reorder near-ties and make Recall@K disagree with other tools, so it is
    upcast; float64 is kept for callers that want exactness over speed.
    """
    dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
    return F.normalize(embeddings.to(dtype), p=2.0, dim=1)


def resolve_chunk_size(
    num_rows: int, num_columns: int, chunk_size: int | None, element_bytes: int = 4
) -> int:
    """Rows per ``rows x num_columns`` block: ``chunk_size`` if given, else a memory budget."""
    if chunk_size is None:
        return max(1, min(num_rows, DEFAULT_CHUNK_BYTES // (element_bytes * num_columns)))
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise EmbeddingShapeError(
            f"chunk_size must be a positive integer (queries per block), got {chunk_size!r}. "
            "Pass e.g. chunk_size=256, or None for a memory-budgeted default."
        )
    return min(chunk_size, num_rows)


def resolve_scan_rows(num_items: int, device: torch.device, chunk_size: int | None) -> int:
    """Queries per scanned block: ``chunk_size`` if given, else ``SCAN_ROWS`` on CPU (a cache
    budget, see :func:`scan_neighbours`) or a 64 MB block of similarities on other devices."""
    if chunk_size is None and device.type == "cpu":
        return min(num_items, SCAN_ROWS)
    return resolve_chunk_size(num_items, num_items, chunk_size)


def topk_lowest_index_first(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-``k`` of ``sims``, best first, equal values ordered by lower column index.

    One ``topk`` of ``k + 1`` tells which rows have a tie across the k-th place (the (k+1)-th value
    equals the k-th); only those rows pay for a full stable sort. Ties inside the top-k are then
    ordered by index with two small stable sorts.
    """
    num_columns = sims.shape[1]
    probe = min(k + 1, num_columns)
    values, indices = torch.topk(sims, probe, dim=1)
    if probe > k:
        boundary_tie = values[:, k - 1] == values[:, k]
        values, indices = values[:, :k], indices[:, :k]
        if bool(boundary_tie.any()):
            tied_rows = boundary_tie.nonzero().squeeze(1)
            tied_values, tied_indices = torch.sort(
                sims[tied_rows], dim=1, descending=True, stable=True
            )
            values = values.clone()
            indices = indices.clone()
            values[tied_rows] = tied_values[:, :k]
            indices[tied_rows] = tied_indices[:, :k]
    by_index = torch.argsort(indices, dim=1)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_value), indices.gather(1, by_value)


def _check_k(k: int, available: int, num_items: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= available:
        raise EmbeddingShapeError(
            f"k must be an integer between 1 and {available} (the number of candidate neighbours "
            f"of each of the {num_items} items), got {k!r}. Ask for fewer neighbours."
        )


def nearest_neighbors(
    embeddings: torch.Tensor,
    k: int,
    *,
    chunk_size: int | None = None,
    exclude_self: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of every row by cosine similarity.

    Returns ``(similarities, indices)``, each ``n x k``, best first; ties go to the lower index.
    Embeddings are L2-normalised here, so the order equals Euclidean order on normalised vectors.
    Queries are scanned ``chunk_size`` at a time (:func:`scan_neighbours`); extra memory is one
    tile, the candidates of the blocks in progress, and the ``n x k`` result.
    """
    validate_embeddings(embeddings)
    num_items = embeddings.shape[0]
    _check_k(k, num_items - 1 if exclude_self else num_items, num_items)
    normalized = normalize(embeddings)
    rows = resolve_scan_rows(num_items, normalized.device, chunk_size)
    all_values = torch.empty(num_items, k, dtype=normalized.dtype, device=normalized.device)
    all_indices = torch.empty(num_items, k, dtype=torch.long, device=normalized.device)
    for block in scan_neighbours(normalized, k, exclude_self=exclude_self, block_rows=rows):
        all_values[block.start : block.stop] = block.similarities
        all_indices[block.start : block.stop] = block.indices
    return all_values, all_indices


def neighbors_of(
    embeddings: torch.Tensor, queries: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of the items ``queries`` only (each query itself excluded).

    The rows of :func:`nearest_neighbors` for those queries, same order and tie rule, from
    ``len(queries)`` rows of similarities instead of a scan of all ``n x n``: a handful of
    retrieval examples then costs a few matrix-vector products, not a whole k-NN pass.
    """
    validate_embeddings(embeddings)
    num_items = embeddings.shape[0]
    _check_k(k, num_items - 1, num_items)
    normalized = normalize(embeddings)
    queries = torch.as_tensor(queries, dtype=torch.long, device=normalized.device)
    sims = normalized[queries] @ normalized.T
    sims[torch.arange(len(queries), device=sims.device), queries] = float("-inf")
    return topk_lowest_index_first(sims, k)
