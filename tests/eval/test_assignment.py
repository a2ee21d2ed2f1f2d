"""The collapse diagnostic of RQ5 on hand-made assignments."""

from __future__ import annotations

import itertools

import pytest
import torch

from dml_bench.eval.assignment import collapse_columns


def test_every_class_on_its_own_proxy_shares_none() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    columns = collapse_columns(torch.tensor([4, 4, 1, 1, 7, 7]), labels)
    assert columns == {"proxies_in_use": 3.0, "shared_proxy_pairs": 0.0}


def test_one_proxy_for_everything_shares_all() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    columns = collapse_columns(torch.zeros(6, dtype=torch.long), labels)
    assert columns == {"proxies_in_use": 1.0, "shared_proxy_pairs": 1.0}


def test_partial_collapse_against_a_loop() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    assigned = torch.tensor([0, 1, 0, 2, 2, 2, 1])
    pairs = [(i, j) for i, j in itertools.permutations(range(7), 2) if labels[i] != labels[j]]
    shared = sum(assigned[i] == assigned[j] for i, j in pairs) / len(pairs)
    columns = collapse_columns(assigned, labels)
    assert columns["proxies_in_use"] == 3.0
    assert columns["shared_proxy_pairs"] == pytest.approx(float(shared))
