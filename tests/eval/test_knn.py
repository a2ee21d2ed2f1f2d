"""Exact k-NN against a full-matrix brute force, tie-breaking, and input checks."""

from __future__ import annotations

import pytest
import torch

from dml_bench.errors import UserError
from dml_bench.eval.knn import nearest_neighbors, neighbors_of, topk_lowest_index_first


def brute_force_neighbors(
    embeddings: torch.Tensor, k: int, exclude_self: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full n x n cosine matrix, each row ordered by (-similarity, index) with Python's sort."""
    normalized = torch.nn.functional.normalize(embeddings.double(), dim=1)
    sims = normalized @ normalized.T
    values, indices = [], []
    for i, row in enumerate(sims.tolist()):
        candidates = [(-s, j) for j, s in enumerate(row) if not (exclude_self and j == i)]
        best = sorted(candidates)[:k]
        values.append([-s for s, _ in best])
        indices.append([j for _, j in best])
    return torch.tensor(values, dtype=torch.float64), torch.tensor(indices)


@pytest.mark.parametrize("chunk_size", [1, 7, 32, 50, 1000, None])
def test_matches_brute_force_for_chunk_sizes(chunk_size: int | None) -> None:
    embeddings = torch.randn(50, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    values, indices = nearest_neighbors(embeddings, 9, chunk_size=chunk_size)
    expected_values, expected_indices = brute_force_neighbors(embeddings, 9, exclude_self=True)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(values, expected_values)


def test_float32_matches_brute_force_order() -> None:
    embeddings = torch.randn(80, 16, generator=torch.Generator().manual_seed(2))
    _, indices = nearest_neighbors(embeddings, 5, chunk_size=13)
    _, expected = brute_force_neighbors(embeddings, 5, exclude_self=True)
    assert torch.equal(indices, expected)


def test_without_excluding_self_each_item_is_its_own_nearest() -> None:
    embeddings = torch.randn(30, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    values, indices = nearest_neighbors(embeddings, 3, exclude_self=False, chunk_size=8)
    assert torch.equal(indices[:, 0], torch.arange(30))
    _, expected = brute_force_neighbors(embeddings, 3, exclude_self=False)
    assert torch.equal(indices, expected)


@pytest.mark.parametrize("chunk_size", [1, 2, None])
def test_ties_go_to_the_lower_index(chunk_size: int | None) -> None:
    a, b = [1.0, 0.0], [0.0, 1.0]
    embeddings = torch.tensor([b, a, a, b, a, b])
    _, indices = nearest_neighbors(embeddings, 5, chunk_size=chunk_size)
    # Item 0 (b): the other b's (3, 5) tie at similarity 1, then the a's (1, 2, 4) tie at 0.
    assert indices[0].tolist() == [3, 5, 1, 2, 4]
    assert indices[1].tolist() == [2, 4, 0, 3, 5]
    _, first_only = nearest_neighbors(embeddings, 1, chunk_size=chunk_size)
    assert first_only[:, 0].tolist() == [3, 2, 1, 0, 1, 0]


def test_topk_lowest_index_first_against_python_sort() -> None:
    generator = torch.Generator().manual_seed(4)
    sims = torch.randint(0, 4, (20, 30), generator=generator).float()  # many exact ties
    for k in (1, 3, 10, 29):
        values, indices = topk_lowest_index_first(sims, k)
        for row, got in zip(sims.tolist(), indices.tolist(), strict=True):
            expected = [j for _, j in sorted((-s, j) for j, s in enumerate(row))[:k]]
            assert got == expected
        assert torch.equal(values, sims.gather(1, indices))


def test_does_not_modify_input() -> None:
    embeddings = torch.randn(10, 3, generator=torch.Generator().manual_seed(5))
    before = embeddings.clone()
    nearest_neighbors(embeddings, 2)
    assert torch.equal(embeddings, before)


@pytest.mark.parametrize(
    ("embeddings", "k"),
    [
        (torch.randn(5, 3), 5),  # only 4 other items
        (torch.randn(5, 3), 0),
        (torch.randn(5), 1),
        (torch.ones(5, 3, dtype=torch.long), 1),
        (torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), 1),
        (torch.randn(1, 3), 1),
    ],
)
def test_bad_input_raises_user_error(embeddings: torch.Tensor, k: int) -> None:
    with pytest.raises(UserError):
        nearest_neighbors(embeddings, k)


def test_bad_chunk_size_raises_user_error() -> None:
    with pytest.raises(UserError, match="chunk_size"):
        nearest_neighbors(torch.randn(5, 3), 1, chunk_size=0)


def test_neighbors_of_some_queries_are_their_rows_of_the_brute_force() -> None:
    embeddings = torch.randn(60, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    queries = torch.tensor([41, 0, 59, 7])
    values, indices = neighbors_of(embeddings, queries, 8)
    expected_values, expected_indices = brute_force_neighbors(embeddings, 8, exclude_self=True)
    assert torch.equal(indices, expected_indices[queries])
    torch.testing.assert_close(values, expected_values[queries])


def test_neighbors_of_breaks_ties_like_nearest_neighbors() -> None:
    a, b = [1.0, 0.0], [0.0, 1.0]
    embeddings = torch.tensor([b, a, a, b, a, b])
    queries = torch.tensor([1, 0, 5])
    for k in (1, 3, 5):
        _, rows = neighbors_of(embeddings, queries, k)
        assert torch.equal(rows, nearest_neighbors(embeddings, k)[1][queries])
    with pytest.raises(UserError, match="k must be"):
        neighbors_of(embeddings, queries, 6)
