"""Exact nearest neighbours by cosine similarity, in query chunks.

The protocol (PAPER.md, "Protocol") ranks every test embedding against all others after L2
normalisation, so cosine similarity and Euclidean distance give the same order. Everything here is
a matrix product on the embeddings' own device, one block of ``chunk_size`` queries at a time, so
memory stays at ``chunk_size x n`` similarities and never reaches the full ``n x n`` matrix.

Ties are broken deterministically: at equal similarity the item with the lower index ranks first.
``torch.topk`` makes no such promise, so :func:`topk_lowest_index_first` detects ties (rare with
real embeddings) and resolves them with a stable sort.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from dml_bench.errors import UserError

logger = logging.getLogger(__name__)

#: Bytes one chunk of query-by-reference similarities may occupy when ``chunk_size`` is not given.
#: 64 MB (277 queries at SOP scale): large enough that per-block overhead (thread start-up of each
#: op) stays small, small enough to keep peak memory far below the 2 GB goal of benchmarks/eval.py;
#: 16 MB to 256 MB blocks measured within noise of each other for the matrix product on 2 cores.
DEFAULT_CHUNK_BYTES = 64 * 2**20

#: Queries per block of the scan (:func:`scan_neighbours`) on CPU when ``chunk_size`` is not
#: given: a 1024 x 1024 float32 tile is 4 MB, within the CPU's cache between the matrix product
#: that writes it and the passes that read it, and large enough that per-operation overhead
#: stays small (256 x 256 tiles measured slower).
SCAN_ROWS = 1024

#: Columns of the "head" on CPU: the first tile every query sees, whose ``topk`` sets its first
#: threshold (see :func:`scan_neighbours`).
HEAD_COLUMNS = 4096

#: Columns reduced to one maximum before entries are picked out of a tile (``_extract_above``).
SCAN_GROUP = 16


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
    """L2-normalise rows, in float32 unless the input is float64 (PAPER.md evaluation protocol).

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


def iter_similarity_chunks(
    normalized: torch.Tensor, chunk_size: int, *, exclude_self: bool = True
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, sims)`` where ``sims[r, j]`` is the similarity of query ``start + r`` to ``j``.

    With ``exclude_self`` a query's similarity to itself is ``-inf``, so it ranks last and never
    counts as its own neighbour (PAPER.md: "each image queries all others (itself excluded)").
    """
    num_items = normalized.shape[0]
    for start in range(0, num_items, chunk_size):
        stop = min(start + chunk_size, num_items)
        sims = normalized[start:stop] @ normalized.T
        if exclude_self:
            _exclude_self(sims, start, 0)
        yield start, sims


def _exclude_self(sims: torch.Tensor, row_start: int, column_start: int) -> None:
    """Set ``sims[r, c]`` to ``-inf`` where query ``row_start + r`` is item ``column_start + c``."""
    first = max(row_start, column_start)
    last = min(row_start + sims.shape[0], column_start + sims.shape[1])
    if first < last:
        items = torch.arange(first, last, device=sims.device)
        sims[items - row_start, items - column_start] = float("-inf")


def similarity_margin(normalized: torch.Tensor) -> float:
    """Bound on how much one cosine similarity can differ between two matrix-product kernels.

    A dot product of two unit vectors of dimension d, rounded with unit roundoff u, is within d*u
    of the exact value (Higham, "Accuracy and Stability of Numerical Algorithms", eq. 3.5), so two
    kernels that sum in different orders differ by at most 2*d*u = d*eps; twice that is used. The
    precision is the one matrix products actually run at (TF32/bfloat16 when
    ``torch.set_float32_matmul_precision`` lowered it), so the margin stays a bound.
    """
    eps = torch.finfo(normalized.dtype).eps
    if normalized.dtype == torch.float32:
        eps = {"highest": eps, "high": 2.0**-10, "medium": 2.0**-7}.get(
            torch.get_float32_matmul_precision(), 2.0**-7
        )
    return 2.0 * normalized.shape[1] * eps


@dataclass
class RowBlockNeighbours:
    """What one scan of a block of queries keeps (see :func:`scan_neighbours`).

    ``rows``/``columns``/``values``: candidate neighbours sorted by (query, similarity descending,
    index ascending); every query has its top ``list_length`` first. ``watch_count``: per query,
    items counted (not kept) above ``watch + margin``; nonzero only for queries whose watched
    similarity fell below their running top-list threshold ("counted" queries).
    """

    start: int
    rows: torch.Tensor
    columns: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    counted: torch.Tensor
    watch_count: torch.Tensor


@dataclass
class _BlockState:
    """Running candidates of one block of queries ``start:stop`` (see :func:`scan_neighbours`).

    ``threshold``: each query's ``list_length``-th best similarity so far (entries at or below it
    in later, higher-index columns cannot enter its list). ``counted``: queries whose watched
    similarity lies below their threshold, whose entries above ``watch + margin`` are counted in
    ``watch_count`` instead of kept.
    """

    start: int
    stop: int
    list_length: int
    watch: torch.Tensor | None
    margin: float
    budget: int
    threshold: torch.Tensor
    counted: torch.Tensor
    watch_count: torch.Tensor
    rows: list[torch.Tensor] = field(default_factory=list)
    columns: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    size: int = 0

    def add(self, rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor) -> None:
        self.rows.append(rows)
        self.columns.append(columns)
        self.values.append(values)
        self.size += len(rows)

    def scan_first(self, sims: torch.Tensor, column_start: int) -> None:
        """The block's first tile (lowest column indices): its ``topk`` sets the thresholds."""
        self.threshold = torch.topk(sims, self.list_length, dim=1, sorted=False).values.amin(1)
        if self.watch is not None:
            self.counted = self.watch - self.margin <= self.threshold
        self._scan(sims, column_start, first=True)

    def scan(self, sims: torch.Tensor, column_start: int) -> None:
        """A later tile, of columns above every column scanned before for these queries."""
        self._scan(sims, column_start, first=False)
        if self.size > self.budget:
            self.compact()

    def _scan(self, sims: torch.Tensor, column_start: int, first: bool) -> None:
        """Add a tile's candidates: entries above the threshold, and for counted queries the
        entries near their watched value (counting the ones above it instead of keeping them)."""
        rows, columns, values = _extract_above(sims, self.threshold, inclusive=first)
        self.add(rows, columns + column_start, values)
        if self.watch is None or not bool(self.counted.any()):
            return
        counted = self.counted.nonzero().squeeze(1)
        counted_sims, counted_watch = sims[counted], self.watch[counted, None]
        self.watch_count[counted] += (counted_sims > counted_watch + self.margin).sum(dim=1)
        compare = torch.lt if first else torch.le
        near = (counted_sims - counted_watch).abs() <= self.margin
        near &= compare(counted_sims, self.threshold[counted, None])
        near_rows, near_columns = near.nonzero(as_tuple=True)
        values = counted_sims[near_rows, near_columns]
        self.add(counted[near_rows], near_columns + column_start, values)

    def compact(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sort the candidates, raise each threshold to its ``list_length``-th value, and drop
        what no later step needs; returns the kept, sorted ``(rows, columns, values, positions)``.

        Kept per query: its top list; if it is *watched* (not counted), every candidate at or
        above ``watch - margin``, so its rank can be counted from the candidates at the end; if
        it is *counted*, the candidates within ``margin`` of the watched value. A query whose
        threshold rises past its watched value becomes counted here: its candidates above
        ``watch + margin`` move into ``watch_count``.
        """
        num_rows = self.stop - self.start
        rows, columns = torch.cat(self.rows), torch.cat(self.columns)
        values = torch.cat(self.values)
        order = sort_candidates(rows, columns, values)
        rows, columns, values = rows[order], columns[order], values[order]
        positions = positions_in_row(rows, num_rows)
        last = positions == self.list_length - 1
        self.threshold[rows[last]] = torch.maximum(self.threshold[rows[last]], values[last])
        keep = positions < self.list_length
        if self.watch is not None:
            watch, margin = self.watch, self.margin
            newly_counted = ~self.counted & (watch - margin <= self.threshold)
            row_watch = watch[rows]
            above = newly_counted[rows] & (values > row_watch + margin)
            self.watch_count += torch.bincount(rows[above], minlength=num_rows)
            self.counted |= newly_counted
            in_band = (values - row_watch).abs() <= margin
            keep |= torch.where(self.counted[rows], in_band, values >= row_watch - margin)
        rows, columns, values = rows[keep], columns[keep], values[keep]
        self.rows, self.columns, self.values, self.size = [rows], [columns], [values], len(rows)
        return rows, columns, values, positions_in_row(rows, num_rows)

    def finish(self) -> RowBlockNeighbours:
        rows, columns, values, positions = self.compact()
        return RowBlockNeighbours(
            self.start, rows, columns, values, positions, self.counted, self.watch_count
        )


def _group_max(sims: torch.Tensor, stride: int) -> torch.Tensor:
    """Row-wise maxima over the column groups ``j, j + stride, j + 2 * stride, ...``.

    ``sims`` is a contiguous tile or the transpose of one (the column side of a symmetric tile);
    either way the maximum runs over an outer dimension, which vectorises.
    """
    num_rows = sims.shape[0]
    if sims.is_contiguous():
        return sims.view(num_rows, SCAN_GROUP, stride).amax(dim=1)
    return sims.T.reshape(SCAN_GROUP, stride, num_rows).amax(dim=0).T


def _extract_above(
    sims: torch.Tensor, threshold: torch.Tensor, inclusive: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(row, column, value)`` of entries above each row's threshold (``>=`` if ``inclusive``).

    Few entries pass, so a full ``nonzero`` over the tile would cost more than the comparison. The
    tile is first reduced to maxima of ``SCAN_GROUP`` columns (one vectorised pass); only groups
    whose maximum passes are gathered and compared element by element.
    """
    compare = torch.ge if inclusive else torch.gt
    width = sims.shape[1]
    if width % SCAN_GROUP or not (sims.is_contiguous() or sims.T.is_contiguous()):
        hit_rows, hit_columns = compare(sims, threshold[:, None]).nonzero(as_tuple=True)
        return hit_rows, hit_columns, sims[hit_rows, hit_columns]
    stride = width // SCAN_GROUP
    group_rows, groups = compare(_group_max(sims, stride), threshold[:, None]).nonzero(
        as_tuple=True
    )
    offsets = torch.arange(0, width, stride, device=sims.device)
    columns = groups[:, None] + offsets[None, :]
    values = sims[group_rows[:, None], columns]
    hit, slot = compare(values, threshold[group_rows, None]).nonzero(as_tuple=True)
    return group_rows[hit], columns[hit, slot], values[hit, slot]


def sort_candidates(
    rows: torch.Tensor, columns: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Order by (row ascending, value descending, column ascending): the tie rule of this module."""
    order = torch.argsort(columns, stable=True)
    order = order[torch.argsort(values[order], descending=True, stable=True)]
    return order[torch.argsort(rows[order], stable=True)]


def positions_in_row(sorted_rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """0-based position of each entry within its row, for entries already grouped by row."""
    counts = torch.bincount(sorted_rows, minlength=num_rows)
    starts = torch.cumsum(counts, dim=0) - counts
    return torch.arange(len(sorted_rows), device=sorted_rows.device) - starts[sorted_rows]


def _block_bounds(num_items: int, head: int, block_rows: int) -> list[tuple[int, int]]:
    """The head block ``[0, head)`` and blocks of ``block_rows`` after it."""
    tail = [(s, min(s + block_rows, num_items)) for s in range(head, num_items, block_rows)]
    return [(0, head), *tail]


def scan_neighbours(
    normalized: torch.Tensor,
    list_length: int,
    *,
    watch: torch.Tensor | None = None,
    exclude_self: bool = True,
    block_rows: int | None = None,
    head_columns: int | None = None,
    candidate_budget: int | None = None,
) -> Iterator[RowBlockNeighbours]:
    """Exact top ``list_length`` of every item against all items, one block of queries at a time.

    Yields a :class:`RowBlockNeighbours` per block of queries as soon as it is complete.

    *Thresholds instead of top-k.* A ``topk`` over every block of similarities reads them once
    more after the matrix product wrote them and costs more than the product at 64 dimensions.
    Here each query first sees the "head" columns ``[0, head_columns)``, whose ``topk`` gives it a
    threshold (its ``list_length``-th similarity so far); later tiles only pick out the few
    entries above it (``_extract_above``). Every query sees the columns in increasing index
    order, so an entry *equal* to its threshold in a later tile loses the tie to the
    ``list_length`` earlier ones and can be skipped: the lists are exact, ties to the lower index.
    Compacting the candidates (beyond ``candidate_budget``) raises the thresholds, which bounds
    memory even for degenerate data.

    *Each similarity once.* The similarity matrix is symmetric: a tile of query block ``I``
    against item block ``J`` is also the tile of ``J`` against ``I``, transposed. Blocks after
    the head are scanned in pairs ``I <= J`` (ascending), and each tile feeds both blocks, which
    halves the matrix products; the order still shows every query its columns in increasing
    order (``J``'s rows get ``I < J`` from earlier pairs, then their own).

    ``watch`` (optional, one similarity per item; ``+inf`` for none) asks for the exact rank of
    an item whose similarity is ``watch`` up to :func:`similarity_margin`: the evaluator passes
    each query's best same-class similarity, computed by another kernel. Candidates then include
    everything within the margin of it (and above it while the query's threshold is lower), and
    for queries whose watched similarity lies below their threshold the entries above
    ``watch + margin`` are counted in ``watch_count`` instead of kept.
    """
    num_items = normalized.shape[0]
    rows = block_rows or resolve_scan_rows(num_items, normalized.device, None)
    head = min(
        num_items, max(head_columns or default_head_columns(normalized, rows), list_length + 1)
    )
    margin = similarity_margin(normalized) if watch is not None else 0.0
    bounds = _block_bounds(num_items, head, rows)

    def new_state(start: int, stop: int) -> _BlockState:
        num_rows = stop - start
        return _BlockState(
            start=start,
            stop=stop,
            list_length=list_length,
            watch=None if watch is None else watch[start:stop],
            margin=margin,
            budget=candidate_budget or max(num_rows * 64 * list_length, 2**20),
            threshold=torch.empty(0, dtype=normalized.dtype, device=normalized.device),
            counted=torch.zeros(num_rows, dtype=torch.bool, device=normalized.device),
            watch_count=torch.zeros(num_rows, dtype=torch.long, device=normalized.device),
        )

    def similarities(row_block: tuple[int, int], column_block: tuple[int, int]) -> torch.Tensor:
        sims = normalized[row_block[0] : row_block[1]] @ normalized[slice(*column_block)].T
        if exclude_self:
            _exclude_self(sims, row_block[0], column_block[0])
        return sims

    states = dict(enumerate(new_state(start, stop) for start, stop in bounds))
    head_state = states.pop(0)
    head_state.scan_first(similarities(bounds[0], bounds[0]), 0)
    for index in range(1, len(bounds)):
        sims = similarities(bounds[index], bounds[0])
        states[index].scan_first(sims, 0)
        head_state.scan(sims.T, bounds[index][0])
    yield head_state.finish()
    for index in range(1, len(bounds)):
        for other in range(index, len(bounds)):
            sims = similarities(bounds[index], bounds[other])
            states[index].scan(sims, bounds[other][0])
            if other != index:
                states[other].scan(sims.T, bounds[index][0])
        yield states.pop(index).finish()


def default_head_columns(normalized: torch.Tensor, block_rows: int) -> int:
    """Head width: ``HEAD_COLUMNS`` on CPU, one block of queries on other devices.

    A wider head gives tighter first thresholds (fewer candidates later) but a larger share of
    the scan runs without the symmetric saving (the head is scanned one way only).
    """
    if normalized.device.type != "cpu":
        return block_rows
    return max(block_rows, HEAD_COLUMNS)


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


def resolve_scan_rows(num_items: int, device: torch.device, chunk_size: int | None) -> int:
    """Queries per scanned block: ``chunk_size`` if given, else ``SCAN_ROWS`` on CPU (a cache
    budget, see :func:`scan_neighbours`) or a 64 MB block of similarities on other devices."""
    if chunk_size is None and device.type == "cpu":
        return min(num_items, SCAN_ROWS)
    return resolve_chunk_size(num_items, num_items, chunk_size)


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
    available = num_items - 1 if exclude_self else num_items
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= available:
        raise EmbeddingShapeError(
            f"k must be an integer between 1 and {available} (the number of candidate neighbours "
            f"of each of the {num_items} items), got {k!r}. Ask for fewer neighbours."
        )
    normalized = normalize(embeddings)
    rows = resolve_scan_rows(num_items, normalized.device, chunk_size)
    all_values = torch.empty(num_items, k, dtype=normalized.dtype, device=normalized.device)
    all_indices = torch.empty(num_items, k, dtype=torch.long, device=normalized.device)
    for block in scan_neighbours(normalized, k, exclude_self=exclude_self, block_rows=rows):
        top = block.positions < k
        stop = block.start + len(block.counted)
        all_values[block.start : stop] = block.values[top].view(-1, k)
        all_indices[block.start : stop] = block.columns[top].view(-1, k)
    return all_values, all_indices
