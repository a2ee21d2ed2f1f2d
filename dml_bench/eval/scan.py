"""The tuned scan behind exact k-NN and the evaluator: one pass, exact top lists and ranks.

:func:`scan_neighbours` is the one entry point. It yields, per block of queries, a
:class:`NeighbourBlock`: each query's exact top ``list_length`` neighbours (ties to the lower
index) and, when labels are given, the 0-based rank of its nearest same-class item among all
other items (what Recall@K needs, for every K at once). Everything else in this module (running
thresholds, candidate compaction, the symmetric tiles, the watched similarity and the counts
above it) is how that single pass stays exact without holding ``n x max(K)`` or ``chunk x n``
values; none of it is read outside this module.

The tests check :func:`scan_neighbours` against a plain full-matrix ``torch.topk`` / stable-sort
reference, exact ties included (tests/eval/test_scan.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

#: Rank given to queries whose class has no other member: larger than any K.
NO_POSITIVE_RANK = torch.iinfo(torch.int64).max

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


@dataclass(frozen=True)
class NeighbourBlock:
    """What the scan gives for the queries ``start:start + len(indices)``.

    ``indices`` / ``similarities``: ``rows x list_length``, each query's top list best first, equal
    similarities ordered by lower index. ``first_positive_rank``: when the scan was given labels,
    the 0-based rank of each query's nearest same-class item among all other items
    (:data:`NO_POSITIVE_RANK` for a query without a class-mate), else ``None``.
    """

    start: int
    indices: torch.Tensor
    similarities: torch.Tensor
    first_positive_rank: torch.Tensor | None = None

    @property
    def stop(self) -> int:
        return self.start + len(self.indices)


def scan_neighbours(
    normalized: torch.Tensor,
    list_length: int,
    *,
    block_rows: int,
    labels: torch.Tensor | None = None,
    exclude_self: bool = True,
    head_columns: int | None = None,
    candidate_budget: int | None = None,
) -> Iterator[NeighbourBlock]:
    """Exact top ``list_length`` of every L2-normalised row against all rows, ``block_rows``
    queries at a time, and with ``labels`` each query's first-positive rank (see the module).

    ``head_columns`` and ``candidate_budget`` tune the scan (defaults: see
    :func:`default_head_columns` and ``_BlockState``); they change speed and memory, never the
    result. Ranks need ``exclude_self`` (a query is not its own class-mate).
    """
    if labels is not None and not exclude_self:
        raise ValueError("first-positive ranks are defined with the query itself excluded")
    classes = _ClassIndex.build(labels) if labels is not None else None
    watch = None
    if classes is not None:
        num_items = normalized.shape[0]
        watch = torch.cat(
            [
                classes.best_positive_similarity(
                    normalized, start, min(start + block_rows, num_items)
                )
                for start in range(0, num_items, block_rows)
            ]
        )
    margin = similarity_margin(normalized)
    for block in _scan_candidates(
        normalized,
        list_length,
        watch=watch,
        exclude_self=exclude_self,
        block_rows=block_rows,
        head_columns=head_columns,
        candidate_budget=candidate_budget,
    ):
        num_rows = len(block.counted)
        top = block.positions < list_length
        ranks = None
        if classes is not None and watch is not None:
            block_watch = watch[block.start : block.start + num_rows]
            ranks = _first_positive_ranks(block, classes.labels, block_watch, margin)
        yield NeighbourBlock(
            start=block.start,
            indices=block.columns[top].view(num_rows, list_length),
            similarities=block.values[top].view(num_rows, list_length),
            first_positive_rank=ranks,
        )


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
class _Candidates:
    """What one scan of a block of queries keeps (see :func:`_scan_candidates`).

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
    """Running candidates of one block of queries ``start:stop`` (see :func:`_scan_candidates`).

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

    def finish(self) -> _Candidates:
        rows, columns, values, positions = self.compact()
        return _Candidates(
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


def _scan_candidates(
    normalized: torch.Tensor,
    list_length: int,
    *,
    watch: torch.Tensor | None = None,
    exclude_self: bool = True,
    block_rows: int,
    head_columns: int | None = None,
    candidate_budget: int | None = None,
) -> Iterator[_Candidates]:
    """Exact top ``list_length`` of every item against all items, one block of queries at a time.

    Yields a :class:`_Candidates` per block of queries as soon as it is complete.

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
    an item whose similarity is ``watch`` up to :func:`similarity_margin`: :func:`scan_neighbours`
    passes each query's best same-class similarity, computed by another kernel. Candidates then include
    everything within the margin of it (and above it while the query's threshold is lower), and
    for queries whose watched similarity lies below their threshold the entries above
    ``watch + margin`` are counted in ``watch_count`` instead of kept.
    """
    num_items = normalized.shape[0]
    rows = block_rows
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
        :func:`similarity_margin`.
        """
        queries = normalized[start:stop]
        members = self.members(start, stop)
        sims = torch.bmm(normalized[members], queries[:, :, None])[:, :, 0]
        itself = members == torch.arange(start, stop, device=members.device)[:, None]
        best = sims.masked_fill(itself, float("-inf")).amax(dim=1)
        return best.masked_fill(self.num_relevant[start:stop] == 0, float("inf"))


def _first_positive_ranks(
    block: _Candidates, labels: torch.Tensor, watch: torch.Tensor, margin: float
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
