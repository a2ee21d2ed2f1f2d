"""evaluate(): against pytorch-metric-learning's AccuracyCalculator, brute force, and sklearn."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.metrics import normalized_mutual_info_score

from dml_bench.errors import UserError
from dml_bench.eval import evaluate, kmeans

MLRC = {
    "p@1": "precision_at_1",
    "r_precision": "r_precision",
    "map@r": "mean_average_precision_at_r",
}


def clustered(
    num_items: int, num_classes: int, dim: int, noise: float, seed: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (num_items,), generator=generator)
    centres = torch.randn(num_classes, dim, generator=generator, dtype=dtype)
    noise_part = noise * torch.randn(num_items, dim, generator=generator, dtype=dtype)
    return centres[labels] + noise_part, labels


def brute_force_recall(embeddings: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """One query at a time: sort all others by (-cosine similarity, index), look at the first k."""
    normalized = torch.nn.functional.normalize(embeddings.double(), dim=1)
    hits = 0
    for i in range(len(labels)):
        sims = (normalized @ normalized[i]).tolist()
        order = sorted((-s, j) for j, s in enumerate(sims) if j != i)
        hits += any(labels[j] == labels[i] for _, j in order[:k])
    return hits / len(labels)


@pytest.mark.parametrize(("noise", "seed"), [(0.6, 0), (1.5, 1)])
def test_recall_matches_a_brute_force_loop(noise: float, seed: int) -> None:
    # High noise puts many first positives beyond the retrieved list (the counting path).
    embeddings, labels = clustered(150, 25, 8, noise, seed, torch.float64)
    ks = (1, 2, 5, 17, 40, 149, 500)
    result = evaluate(embeddings, labels, ks, nmi=False, chunk_size=23)
    for k in ks:
        assert result[f"recall@{k}"] == pytest.approx(brute_force_recall(embeddings, labels, k))


def test_recall_with_exact_ties_uses_the_lower_index() -> None:
    # Duplicated points across classes: which tied item ranks first decides Recall@1.
    base = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    embeddings = base.repeat(4, 1)  # item i and i + 6 + ... are identical
    labels = torch.arange(24) % 5
    result = evaluate(embeddings, labels, (1, 2, 3, 20), nmi=False, chunk_size=5)
    for k in (1, 2, 3, 20):
        assert result[f"recall@{k}"] == pytest.approx(brute_force_recall(embeddings, labels, k))


@pytest.mark.parametrize("with_lone_classes", [False, True])
def test_musgrave_metrics_match_accuracy_calculator(with_lone_classes: bool) -> None:
    embeddings, labels = clustered(400, 40, 16, 0.9, 3, torch.float32)
    if with_lone_classes:
        labels = labels.clone()
        labels[:3] = torch.tensor([100, 101, 102])
    result = evaluate(embeddings, labels, (1,), nmi=False)
    normalized = torch.nn.functional.normalize(embeddings, dim=1)
    calculator = AccuracyCalculator(
        include=tuple(MLRC.values()), k="max_bin_count", device=torch.device("cpu")
    )
    # reference omitted: PML then compares each query with the others, itself excluded.
    expected = calculator.get_accuracy(normalized, labels)
    for ours, theirs in MLRC.items():
        assert result[ours] == pytest.approx(expected[theirs], abs=1e-6)
    assert 0.05 < result["map@r"] < 0.95  # the data is neither trivial nor hopeless


def test_nmi_is_sklearns_nmi_of_the_seeded_kmeans() -> None:
    embeddings, labels = clustered(300, 12, 8, 0.8, 4, torch.float32)
    result = evaluate(embeddings, labels, (1,), seed=5)
    normalized = torch.nn.functional.normalize(embeddings, dim=1)
    assignments = kmeans(normalized, 12, seed=5).assignments
    expected = normalized_mutual_info_score(labels.numpy(), assignments.numpy())
    assert result["nmi"] == pytest.approx(expected, abs=1e-12)


def test_result_is_plain_floats_with_the_documented_keys() -> None:
    embeddings, labels = clustered(60, 6, 4, 0.5, 5, torch.float32)
    result = evaluate(embeddings, labels, (1, 10))
    assert set(result) == {"recall@1", "recall@10", "nmi", "p@1", "r_precision", "map@r"}
    assert all(type(value) is float for value in result.values())
    assert "nmi" not in evaluate(embeddings, labels, (1,), nmi=False)


def test_chunk_size_and_scale_do_not_change_results() -> None:
    embeddings, labels = clustered(90, 9, 6, 0.7, 6, torch.float64)
    reference = evaluate(embeddings, labels, (1, 4, 30), nmi=False)
    for chunk_size in (1, 8, 89):
        chunked = evaluate(embeddings, labels, (1, 4, 30), nmi=False, chunk_size=chunk_size)
        assert chunked == pytest.approx(reference, abs=1e-12)  # summation order differs
    # L2 normalisation first: rescaling embeddings changes nothing.
    scales = torch.rand(90, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scaled = evaluate(embeddings * (scales + 0.5), labels, (1, 4, 30), nmi=False)
    assert scaled == pytest.approx(reference)


def test_accepts_tensors_that_require_grad() -> None:
    embeddings, labels = clustered(40, 4, 4, 0.5, 7, torch.float32)
    result = evaluate(embeddings.requires_grad_(), labels, (1,), nmi=False)
    assert 0.0 <= result["recall@1"] <= 1.0


def test_only_lone_classes_give_nan_for_musgrave_metrics() -> None:
    result = evaluate(torch.randn(5, 3), torch.arange(5), (1,), nmi=False)
    assert result["recall@1"] == 0.0
    assert math.isnan(result["map@r"])


@pytest.mark.parametrize(
    ("labels", "ks"),
    [
        (torch.zeros(9, dtype=torch.long), (1,)),  # wrong length
        (torch.zeros(10), (1,)),  # float labels
        (torch.zeros(10, dtype=torch.long), ()),
        (torch.zeros(10, dtype=torch.long), (0,)),
    ],
)
def test_bad_input_raises_user_error(labels: torch.Tensor, ks: tuple[int, ...]) -> None:
    with pytest.raises(UserError):
        evaluate(torch.randn(10, 3), labels, ks)
