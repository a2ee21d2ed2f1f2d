"""Retrieval metrics as pure functions of neighbour labels.

Inputs are ``knn_labels`` (``n x k``: the labels of each query's neighbours, best first, the query
itself excluded), ``query_labels`` (``n``) and, for the Musgrave et al. metrics, ``num_relevant``
(``n``: how many *other* items share the query's class, the "R" of R-Precision).

Definitions:

* Recall@K (docs/protocol.md protocol; Song et al. 2016): fraction of **all** queries with at least one
  same-class item among the K nearest. A query whose class has no other member can never hit and
  counts as a miss; the protocol's test sets have no such classes.
* P@1, R-Precision, MAP@R (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020), as in
  pytorch-metric-learning's ``AccuracyCalculator``: R-Precision is the fraction of the R nearest
  that are relevant; MAP@R is ``(1/R) * sum_{i<=R} P(i) * rel(i)`` with ``P(i)`` the precision of
  the i nearest. Queries with ``R = 0`` (their class has no other member) are **left out** of the
  average, as ``AccuracyCalculator`` does ("lone" queries); if every query is lone, the result is
  NaN, again as there.

The ``*_per_query`` functions return one float64 value per query so the evaluator can add them up
chunk by chunk without holding all neighbour lists at once.
"""

from __future__ import annotations

import torch

from dml_bench.errors import UserError


class MetricInputError(UserError):
    """Neighbour labels, query labels or relevant counts do not fit together."""


def num_relevant_per_query(labels: torch.Tensor) -> torch.Tensor:
    """For each item, how many other items share its label (R in R-Precision and MAP@R)."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    return counts[inverse] - 1


def _check_knn(knn_labels: torch.Tensor, query_labels: torch.Tensor, needed: int) -> None:
    if knn_labels.ndim != 2 or query_labels.ndim != 1 or len(knn_labels) != len(query_labels):
        raise MetricInputError(
            f"knn_labels must be n x k and query_labels n, got {tuple(knn_labels.shape)} and "
            f"{tuple(query_labels.shape)}. Pass one row of neighbour labels per query."
        )
    if knn_labels.shape[1] < needed:
        raise MetricInputError(
            f"This metric needs at least {needed} neighbours per query, got "
            f"{knn_labels.shape[1]}. Retrieve more neighbours (for R-Precision and MAP@R: at "
            "least the largest class size minus one)."
        )


def _relevance(knn_labels: torch.Tensor, query_labels: torch.Tensor) -> torch.Tensor:
    return knn_labels == query_labels[:, None]


def _mean_over_non_lone(values: torch.Tensor, num_relevant: torch.Tensor) -> float:
    keep = num_relevant > 0
    if not bool(keep.any()):
        return float("nan")
    return float(values[keep].to(torch.float64).mean())


def recall_at_k(knn_labels: torch.Tensor, query_labels: torch.Tensor, k: int) -> float:
    """Fraction of queries with a same-class item among their ``k`` nearest (docs/protocol.md)."""
    _check_knn(knn_labels, query_labels, k)
    hits = _relevance(knn_labels[:, :k], query_labels).any(dim=1)
    return float(hits.to(torch.float64).mean())


def precision_at_1_per_query(knn_labels: torch.Tensor, query_labels: torch.Tensor) -> torch.Tensor:
    """1.0 where the nearest neighbour shares the query's class, else 0.0."""
    _check_knn(knn_labels, query_labels, 1)
    return _relevance(knn_labels[:, :1], query_labels)[:, 0].to(torch.float64)


def precision_at_1(
    knn_labels: torch.Tensor, query_labels: torch.Tensor, num_relevant: torch.Tensor
) -> float:
    """P@1 over queries with ``R > 0`` (Musgrave et al. 2020; lone queries left out)."""
    return _mean_over_non_lone(precision_at_1_per_query(knn_labels, query_labels), num_relevant)


def _first_r_relevance(
    knn_labels: torch.Tensor, query_labels: torch.Tensor, num_relevant: torch.Tensor
) -> torch.Tensor:
    """Relevance of each query's R nearest; positions past R are False."""
    max_r = int(num_relevant.max()) if len(num_relevant) else 0
    _check_knn(knn_labels, query_labels, max_r)
    positions = torch.arange(max_r, device=knn_labels.device)
    within_r = positions[None, :] < num_relevant[:, None]
    return _relevance(knn_labels[:, :max_r], query_labels) & within_r


def r_precision_per_query(
    knn_labels: torch.Tensor, query_labels: torch.Tensor, num_relevant: torch.Tensor
) -> torch.Tensor:
    """Relevant items among the R nearest, divided by R (NaN where R = 0)."""
    relevant = _first_r_relevance(knn_labels, query_labels, num_relevant)
    return relevant.sum(dim=1).to(torch.float64) / num_relevant.to(torch.float64)


def r_precision(
    knn_labels: torch.Tensor, query_labels: torch.Tensor, num_relevant: torch.Tensor
) -> float:
    """Mean R-Precision over queries with ``R > 0`` (Musgrave et al. 2020)."""
    per_query = r_precision_per_query(knn_labels, query_labels, num_relevant)
    return _mean_over_non_lone(per_query, num_relevant)


def average_precision_at_r_per_query(
    knn_labels: torch.Tensor, query_labels: torch.Tensor, num_relevant: torch.Tensor
) -> torch.Tensor:
    """``(1/R) * sum_{i<=R} P(i) * rel(i)`` per query (NaN where R = 0).

    Dividing by R rather than by the number of hits is what makes MAP@R reward ranking *all*
    relevant items first (Musgrave et al. 2020, Sec. 3.2), unlike plain average precision.
    """
    relevant = _first_r_relevance(knn_labels, query_labels, num_relevant)
    ranks = torch.arange(1, relevant.shape[1] + 1, device=relevant.device, dtype=torch.float64)
    precision_at_i = relevant.cumsum(dim=1).to(torch.float64) / ranks
    summed = (precision_at_i * relevant).sum(dim=1)
    return summed / num_relevant.to(torch.float64)


def map_at_r(
    knn_labels: torch.Tensor, query_labels: torch.Tensor, num_relevant: torch.Tensor
) -> float:
    """Mean Average Precision at R over queries with ``R > 0`` (Musgrave et al. 2020)."""
    per_query = average_precision_at_r_per_query(knn_labels, query_labels, num_relevant)
    return _mean_over_non_lone(per_query, num_relevant)
