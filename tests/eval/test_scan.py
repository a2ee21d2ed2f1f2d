"""The tuned scan against a plain chunked top-k over the full similarity rows, ties included."""

from __future__ import annotations

import pytest
import torch

from dml_bench.eval.knn import normalize
from dml_bench.eval.scan import (
    NO_POSITIVE_RANK,
    NeighbourBlock,
    _ClassIndex,
    _scan_candidates,
    scan_neighbours,
)


def reference(
    normalized: torch.Tensor, list_length: int, labels: torch.Tensor, chunk: int = 11
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chunks of full rows: ``torch.topk`` for the values, a stable sort for the tie order, and
    the first class-mate's position in that order (``NO_POSITIVE_RANK`` if there is none)."""
    values, indices, ranks = [], [], []
    for start in range(0, len(normalized), chunk):
        sims = normalized[start : start + chunk] @ normalized.T
        rows = torch.arange(len(sims))
        sims[rows, rows + start] = float("-inf")  # a query is not its own neighbour
        values.append(torch.topk(sims, list_length, dim=1).values)
        order = torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :-1]
        indices.append(order[:, :list_length])
        mate = labels[order] == labels[start : start + chunk, None]
        first = torch.where(mate.any(1), mate.float().argmax(1), torch.tensor(NO_POSITIVE_RANK))
        ranks.append(first)
    return torch.cat(values), torch.cat(indices), torch.cat(ranks)


def lattice_embeddings(num_items: int, seed: int) -> torch.Tensor:
    """Four entries of +-1 among eight: every cosine similarity is a multiple of 1/4, computed
    exactly by any kernel, so there are many true ties for the tie rule to decide."""
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.zeros(num_items, 8, dtype=torch.float64)
    for row in embeddings:
        slots = torch.randperm(8, generator=generator)[:4]
        row[slots] = torch.randint(0, 2, (4,), generator=generator).double() * 2 - 1
    return embeddings


def dataset(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 30, (120,), generator=generator)
    centres = torch.randn(30, 6, generator=generator, dtype=torch.float64)
    noise = 1.2 * torch.randn(120, 6, generator=generator, dtype=torch.float64)
    embeddings = lattice_embeddings(120, 9) if kind == "ties" else centres[labels] + noise
    labels[0] = 99  # a lone query: no class-mate
    return normalize(embeddings), labels


def collect(blocks: list[NeighbourBlock]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    assert [b.start for b in blocks] == sorted(b.start for b in blocks)
    assert blocks[0].start == 0 and blocks[-1].stop == 120
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:], strict=False))
    ranks = [b.first_positive_rank for b in blocks]
    assert all(r is not None for r in ranks)
    return (
        torch.cat([b.similarities for b in blocks]),
        torch.cat([b.indices for b in blocks]),
        torch.cat([r for r in ranks if r is not None]),
    )


# Small blocks, heads and budgets force the symmetric tiles (each feeding a row and a column
# block), threshold raises, compaction, and queries whose rank is counted rather than kept;
# 24 and 7 are not multiples of the group size.
SETTINGS = [(16, 16, None), (16, 32, 60), (40, 8, 1), (24, 16, 30), (7, 20, 1), (120, None, None)]


@pytest.mark.parametrize(("block_rows", "head", "budget"), SETTINGS)
@pytest.mark.parametrize("kind", ["random", "ties"])
@pytest.mark.parametrize("list_length", [1, 3, 7])
def test_scan_matches_the_chunked_topk_reference(
    block_rows: int, head: int | None, budget: int | None, kind: str, list_length: int
) -> None:
    normalized, labels = dataset(kind)
    expected_values, expected_indices, expected_ranks = reference(normalized, list_length, labels)
    blocks = list(
        scan_neighbours(
            normalized,
            list_length,
            block_rows=block_rows,
            labels=labels,
            head_columns=head,
            candidate_budget=budget,
        )
    )
    values, indices, ranks = collect(blocks)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(values, expected_values)
    assert torch.equal(ranks, expected_ranks)
    assert ranks[0] == NO_POSITIVE_RANK


def test_without_labels_there_are_no_ranks_and_the_same_lists() -> None:
    normalized, labels = dataset("ties")
    with_labels = list(scan_neighbours(normalized, 5, block_rows=16, labels=labels))
    without = list(scan_neighbours(normalized, 5, block_rows=16))
    assert all(b.first_positive_rank is None for b in without)
    assert torch.equal(
        torch.cat([b.indices for b in with_labels]), torch.cat([b.indices for b in without])
    )


def test_ties_across_tiles_go_to_the_lower_index() -> None:
    a, b = [1.0, 0.0], [0.0, 1.0]
    normalized = normalize(torch.tensor([b, a, a, b, a, b] * 6, dtype=torch.float64))
    blocks = list(
        scan_neighbours(normalized, 7, block_rows=16, head_columns=8, candidate_budget=50)
    )
    _, expected, _ = reference(normalized, 7, torch.arange(36))
    assert torch.equal(torch.cat([b.indices for b in blocks]), expected)


def test_including_self_makes_each_item_its_own_first_neighbour() -> None:
    normalized, _ = dataset("random")
    blocks = list(scan_neighbours(normalized, 2, block_rows=32, exclude_self=False))
    assert torch.equal(torch.cat([b.indices[:, 0] for b in blocks]), torch.arange(120))


def test_ranks_need_the_query_excluded() -> None:
    normalized, labels = dataset("random")
    with pytest.raises(ValueError, match="excluded"):
        list(scan_neighbours(normalized, 2, block_rows=32, labels=labels, exclude_self=False))


@pytest.mark.parametrize(("block_rows", "head", "budget"), SETTINGS[:3])
def test_the_settings_exercise_both_ways_of_ranking(
    block_rows: int, head: int, budget: int | None
) -> None:
    """Not vacuous: some queries' ranks come from counts of dropped items, others from kept
    candidates, so the reference comparison above covers both paths."""
    normalized, labels = dataset("random")
    classes = _ClassIndex.build(labels)
    watch = classes.best_positive_similarity(normalized, 0, 120)
    counted = torch.cat(
        [
            block.counted
            for block in _scan_candidates(
                normalized,
                3,
                watch=watch,
                block_rows=block_rows,
                head_columns=head,
                candidate_budget=budget,
            )
        ]
    )
    assert counted.any() and not counted.all()
