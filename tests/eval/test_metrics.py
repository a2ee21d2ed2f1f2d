"""Metric functions on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from dml_bench.errors import UserError
from dml_bench.eval.metrics import (
    map_at_r,
    num_relevant_per_query,
    precision_at_1,
    r_precision,
    recall_at_k,
)

# Four queries; the last one's class (5) has no other member (R = 0, a "lone" query).
KNN_LABELS = torch.tensor([[1, 0, 1], [0, 0, 1], [2, 1, 1], [0, 1, 2]])
QUERY_LABELS = torch.tensor([1, 0, 1, 5])
NUM_RELEVANT = torch.tensor([2, 2, 3, 0])


def test_num_relevant_counts_other_members_of_the_class() -> None:
    assert num_relevant_per_query(torch.tensor([3, 1, 3, 3, 7])).tolist() == [2, 0, 2, 2, 0]


def test_recall_at_k_counts_every_query() -> None:
    # Hits at K=1: queries 0 and 1; at K=2 also query 2; the lone query never hits.
    assert recall_at_k(KNN_LABELS, QUERY_LABELS, 1) == pytest.approx(2 / 4)
    assert recall_at_k(KNN_LABELS, QUERY_LABELS, 2) == pytest.approx(3 / 4)
    assert recall_at_k(KNN_LABELS, QUERY_LABELS, 3) == pytest.approx(3 / 4)


def test_precision_at_1_leaves_out_lone_queries() -> None:
    assert precision_at_1(KNN_LABELS, QUERY_LABELS, NUM_RELEVANT) == pytest.approx(2 / 3)


def test_r_precision_by_hand() -> None:
    # q0: 1 of its R=2 nearest relevant; q1: 2 of 2; q2: 2 of 3.
    expected = (1 / 2 + 2 / 2 + 2 / 3) / 3
    assert r_precision(KNN_LABELS, QUERY_LABELS, NUM_RELEVANT) == pytest.approx(expected)


def test_map_at_r_by_hand() -> None:
    # q0: (1/2)(1/1);  q1: (1/2)(1/1 + 2/2);  q2: (1/3)(1/2 + 2/3).
    expected = (1 / 2 + 1 + (1 / 2 + 2 / 3) / 3) / 3
    assert map_at_r(KNN_LABELS, QUERY_LABELS, NUM_RELEVANT) == pytest.approx(expected)


def test_map_at_r_ignores_hits_past_r() -> None:
    # R = 1 but the only relevant item is at rank 2: AP@R is 0 although AP would be 1/2.
    knn, query, relevant = torch.tensor([[0, 1, 1]]), torch.tensor([1]), torch.tensor([1])
    assert map_at_r(knn, query, relevant) == 0.0
    assert r_precision(knn, query, relevant) == 0.0


def test_all_lone_queries_give_nan() -> None:
    knn, query, relevant = torch.tensor([[0], [1]]), torch.tensor([2, 3]), torch.tensor([0, 0])
    assert math.isnan(precision_at_1(knn, query, relevant))
    assert math.isnan(map_at_r(knn, query, relevant))


def test_too_few_neighbours_raise_user_error() -> None:
    with pytest.raises(UserError, match="at least 3"):
        r_precision(KNN_LABELS[:, :2], QUERY_LABELS, NUM_RELEVANT)
    with pytest.raises(UserError):
        recall_at_k(KNN_LABELS, QUERY_LABELS[:3], 1)
