"""k-means: recovers separated blobs, is deterministic per seed, and checks its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from dml_bench.errors import UserError
from dml_bench.eval.clustering import _kmeans_plus_plus, clustering_nmi, kmeans, weighted_index


def blobs(num_blobs: int, per_blob: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = 10.0 * torch.randn(num_blobs, dim, generator=generator)
    labels = torch.arange(num_blobs).repeat_interleave(per_blob)
    points = centres[labels] + 0.1 * torch.randn(len(labels), dim, generator=generator)
    return points, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_plus_plus_recovers_separated_blobs(seed: int) -> None:
    points, labels = blobs(8, 25, 16, seed)
    result = kmeans(points, 8, seed=seed, init="k-means++")
    assert normalized_mutual_info_score(labels, result.assignments) == pytest.approx(1.0)


def test_random_init_with_many_small_clusters_recovers_most() -> None:
    # SOP-like: many clusters of a few points, where the default init is random points. Random
    # starts leave some clusters split and others merged, so NMI is high but below k-means++'s.
    points, labels = blobs(60, 3, 8, seed=3)
    random_start = kmeans(points, 60, seed=0, init="random", max_iter=50)
    plus_plus = kmeans(points, 60, seed=0, init="k-means++", max_iter=50)
    random_nmi = normalized_mutual_info_score(labels, random_start.assignments)
    assert 0.9 < random_nmi <= normalized_mutual_info_score(labels, plus_plus.assignments)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_kmeans_is_deterministic_for_a_seed(init: str) -> None:
    points = torch.randn(300, 5, generator=torch.Generator().manual_seed(4))
    first = kmeans(points, 12, seed=7, init=init)  # type: ignore[arg-type]
    second = kmeans(points, 12, seed=7, init=init, chunk_size=17)  # type: ignore[arg-type]
    assert torch.equal(first.assignments, second.assignments)
    other_seed = kmeans(points, 12, seed=8, init=init)  # type: ignore[arg-type]
    assert not torch.equal(first.assignments, other_seed.assignments)


def test_lloyd_iterations_do_not_increase_the_error() -> None:
    points = torch.randn(400, 4, generator=torch.Generator().manual_seed(5))
    one = kmeans(points, 10, seed=0, max_iter=1)
    many = kmeans(points, 10, seed=0, max_iter=30)
    assert many.inertia <= one.inertia + 1e-4
    # The reported inertia is the summed squared distance to the assigned centroids.
    direct = ((points - many.centroids[many.assignments]) ** 2).sum()
    assert many.inertia == pytest.approx(float(direct), rel=1e-4)


def test_every_cluster_is_used_even_with_duplicate_points() -> None:
    points = torch.cat([torch.zeros(20, 3), torch.eye(3), 5 * torch.eye(3)])
    result = kmeans(points, 7, seed=0, init="random")
    assert torch.unique(result.assignments).numel() == 7


def test_clustering_nmi_is_sklearns_nmi_of_the_same_clustering() -> None:
    points, labels = blobs(6, 10, 4, seed=6)
    points = points + 8.0 * torch.randn(points.shape, generator=torch.Generator().manual_seed(0))
    normalized = torch.nn.functional.normalize(points, dim=1)
    assignments = kmeans(normalized, 6, seed=3).assignments
    expected = normalized_mutual_info_score(labels.numpy(), assignments.numpy())
    assert clustering_nmi(normalized, labels, seed=3) == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected < 1.0


@pytest.mark.parametrize("num_clusters", [0, 11])
def test_impossible_cluster_count_raises_user_error(num_clusters: int) -> None:
    with pytest.raises(UserError):
        kmeans(torch.randn(10, 2), num_clusters)


def test_unknown_init_raises_user_error() -> None:
    with pytest.raises(UserError, match="init"):
        kmeans(torch.randn(10, 2), 2, init="best")  # type: ignore[arg-type]


def test_faiss_and_torch_backends_run_the_same_lloyd_loop() -> None:
    pytest.importorskip("faiss")
    points, _ = blobs(20, 6, 8, seed=7)
    points = points + 6.0 * torch.randn(points.shape, generator=torch.Generator().manual_seed(1))
    on_torch = kmeans(points, 20, seed=2, init="random", backend="torch")
    on_faiss = kmeans(points, 20, seed=2, init="random", backend="faiss")
    # Same init, update and stopping rule: the same clustering, up to float rounding.
    assert torch.equal(on_torch.assignments, on_faiss.assignments)
    assert on_torch.iterations == on_faiss.iterations > 1
    assert on_faiss.inertia == pytest.approx(on_torch.inertia, rel=1e-5)


def test_auto_backend_falls_back_to_torch_where_faiss_cannot_run() -> None:
    points = torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    automatic = kmeans(points, 5, seed=0)  # float64: faiss needs float32, so torch runs
    assert torch.equal(
        automatic.assignments, kmeans(points, 5, seed=0, backend="torch").assignments
    )


def test_early_stop_is_a_fixed_point() -> None:
    points = torch.randn(200, 4, generator=torch.Generator().manual_seed(3))
    converged = kmeans(points, 8, seed=1, max_iter=100)
    assert converged.iterations < 100
    longer = kmeans(points, 8, seed=1, max_iter=converged.iterations + 5)
    assert torch.equal(converged.assignments, longer.assignments)
    torch.testing.assert_close(converged.centroids, longer.centroids)


@pytest.mark.parametrize(
    ("backend", "points"),
    [("best", torch.randn(10, 2)), ("faiss", torch.randn(10, 2, dtype=torch.float64))],
)
def test_unusable_backend_raises_user_error(backend: str, points: torch.Tensor) -> None:
    with pytest.raises(UserError, match="backend"):
        kmeans(points, 2, backend=backend)  # type: ignore[arg-type]


def test_weighted_index_inverts_the_cumulative_weights_like_numpy() -> None:
    weights = torch.tensor([0.0, 3.0, 0.0, 1.0, 0.5, 0.0, 2.5], dtype=torch.float32)
    grid = (np.arange(7000) + 0.5) / 7000
    reference = np.searchsorted(np.cumsum(weights.double().numpy()), grid * 7.0, side="right")
    drawn = np.array([int(weighted_index(weights, torch.tensor(u).double())) for u in grid])
    assert np.array_equal(drawn, reference)
    frequencies = np.bincount(drawn, minlength=7) / len(grid)
    assert frequencies == pytest.approx((weights / weights.sum()).numpy(), abs=1 / 7000)
    assert frequencies[[0, 2, 5]].sum() == 0  # a zero weight is never drawn


def test_weighted_index_of_all_zero_weights_is_uniform() -> None:
    zeros = torch.zeros(4)
    drawn = [int(weighted_index(zeros, torch.tensor(u).double())) for u in (0.0, 0.3, 0.6, 0.99)]
    assert drawn == [0, 1, 2, 3]


def test_kmeans_plus_plus_draws_centres_with_d_squared_probabilities() -> None:
    # Brute force: the first centre uniform, the second with probability proportional to the
    # squared distance to the first; compared with the frequencies over 6,000 seeds.
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    sq = (points.numpy() - points.numpy().T) ** 2
    exact = sq / sq.sum(axis=1, keepdims=True) / len(points)  # P(first = i, second = j)
    counts = np.zeros_like(exact)
    for seed in range(6000):
        first, second = _kmeans_plus_plus(points, 2, torch.Generator().manual_seed(seed)).tolist()
        counts[first, second] += 1
    assert np.all(counts[np.eye(4, dtype=bool)] == 0)
    assert counts / 6000 == pytest.approx(exact, abs=0.016)  # 3 standard errors at p = 0.21


def test_nmi_matches_scikit_learns_kmeans_on_overlapping_blobs() -> None:
    # k-means++ then Lloyd on both sides (scikit-learn's seeding adds greedy local trials), other
    # random draws: the mean NMIs over seeds agree within their seed-to-seed spread.
    points, labels = blobs(20, 30, 8, seed=5)
    points = points + 4.0 * torch.randn(points.shape, generator=torch.Generator().manual_seed(6))
    ours = [clustering_nmi(points, labels, seed=s) for s in range(5)]
    theirs = [
        normalized_mutual_info_score(
            labels, KMeans(20, init="k-means++", n_init=1, random_state=s).fit_predict(points)
        )
        for s in range(5)
    ]
    spread = max(np.std(ours), np.std(theirs))
    assert 0.5 < np.mean(theirs) < 0.98  # overlapping, so the test is not trivial
    assert abs(np.mean(ours) - np.mean(theirs)) < max(3 * spread, 0.01)
