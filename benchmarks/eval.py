"""Benchmark: dml-bench's evaluator against pytorch-metric-learning's AccuracyCalculator (faiss).

Both evaluate the same SOP-shaped synthetic embeddings (11,316 classes of 2-12 items, 60,502 in all
at ``--size sop``; a tenth of that at ``--size small``), clustered so that no metric is 0 or 1.
Each side runs in its own child process so that its peak memory is its own: the figure is the
child's ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak resident set, imports and data
included), and the "own" figure subtracts the resident set measured just before evaluating.

Metric agreement: the largest absolute difference per metric (Recall@K, P@1, R-Precision, MAP@R).
NMI depends on the k-means run (ours: our seeded Lloyd loop from random points, assignment by
faiss when installed; the anchor's: ``faiss.Kmeans``), so it is not expected to agree to 1e-4; it is
compared against the spread of the anchor's own NMI over two k-means seeds, i.e. against how much
NMI moves when only the clustering's randomness changes, and the two clusterings are compared on
what k-means minimises: the sum of squared distances of the (L2-normalised) points to the means
of their clusters, computed by one function from each side's final assignments. The lower
objective is the better k-means solution; an NMI gap that comes with a lower objective is a
better clustering, not an error.

Both children run with the same number of threads (``--threads``, default: the machine's cores),
set through ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` before torch and faiss load. With
``--repeats R`` the two sides alternate R times and the medians are reported, which is what a
shared, loaded machine needs.

Usage:  python benchmarks/eval.py [--size small|sop] [--dims 64,512] [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SOP_CLASSES = 11_316
SOP_ITEMS = 60_502
SIZES = {"small": 10, "sop": 1}  # divisor of the SOP class and item counts
KS = (1, 10, 100, 1000)
GOALS = {"time_ratio": 0.5, "peak_gb": 2.0, "max_abs_diff": 1e-4}
# Noise relative to the class-centre spread, per dimension, tuned so R@1 lands near 0.6-0.8.
NOISE = {64: 1.1, 512: 2.3}
METRICS = [f"recall@{k}" for k in KS] + ["p@1", "r_precision", "map@r"]


# ----------------------------------------------------------------------------- data
def sop_class_sizes(num_classes: int, num_items: int, rng: np.random.Generator) -> np.ndarray:
    """Class sizes between 2 and 12 summing exactly to ``num_items`` (SOP's test split shape)."""
    sizes = np.full(num_classes, 2)
    while (missing := num_items - int(sizes.sum())) > 0:
        room = np.flatnonzero(sizes < 12)
        extra = np.bincount(rng.choice(room, size=missing), minlength=num_classes)
        sizes = np.minimum(sizes + extra, 12)
    return sizes


def synthetic_embeddings(size: str, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes around random centres: ``(embeddings float32, labels int64)``."""
    rng = np.random.default_rng(seed)
    divisor = SIZES[size]
    sizes = sop_class_sizes(SOP_CLASSES // divisor, SOP_ITEMS // divisor, rng)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.standard_normal((len(sizes), dim)).astype(np.float32)
    noise = rng.standard_normal((len(labels), dim)).astype(np.float32)
    embeddings = centres[labels] + NOISE.get(dim, 1.2) * noise
    order = rng.permutation(len(labels))  # classes are not contiguous in a real test split
    return embeddings[order], labels[order]


# ----------------------------------------------------------------------------- workers
def rss_now_mb() -> float:
    """Current resident set of this process (Linux /proc), for the 'own memory' baseline."""
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Timed:
    """Wraps a knn/kmeans callable, adds up the seconds spent in it, keeps its last result."""

    last: Any = None

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func, self.seconds = func, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            self.last = self.func(*args, **kwargs)
            return self.last
        finally:
            self.seconds += time.perf_counter() - start


def kmeans_objective(embeddings: Any, assignments: Any) -> float:
    """Sum of squared distances of the L2-normalised points to the means of their clusters (what
    Lloyd's k-means minimises), in float64, from the final assignments alone."""
    import torch

    points = torch.nn.functional.normalize(embeddings, dim=1).double()
    clusters = torch.as_tensor(np.asarray(assignments)).long().reshape(-1)
    k = int(clusters.max()) + 1
    sums = torch.zeros(k, points.shape[1], dtype=torch.float64).index_add_(0, clusters, points)
    counts = torch.bincount(clusters, minlength=k).clamp(min=1).double()
    means = sums / counts[:, None]
    return float(((points - means[clusters]) ** 2).sum())


def run_ours(embeddings: Any, labels: Any) -> tuple[dict[str, float], dict[str, float]]:
    """dml-bench's ``evaluate``; its two stages are timed by wrapping them in place."""
    from dml_bench.eval import clustering as clustering_module
    from dml_bench.eval import evaluator

    retrieval = _Timed(evaluator.retrieval_metrics)
    clustering = _Timed(evaluator.clustering_nmi)
    kmeans = _Timed(clustering_module.kmeans)
    evaluator.retrieval_metrics, evaluator.clustering_nmi = retrieval, clustering
    clustering_module.kmeans = kmeans
    start = time.perf_counter()
    metrics = evaluator.evaluate(embeddings, labels, KS, nmi=True, seed=0)
    total = time.perf_counter() - start
    metrics["kmeans_objective"] = kmeans_objective(embeddings, kmeans.last.assignments.cpu())
    timings = {
        "total_s": total,
        "knn_metrics_s": retrieval.seconds,
        "kmeans_s": clustering.seconds,
    }
    timings["cpu_s"] = time.process_time()
    return metrics, timings


def _recall_method(k: int) -> Callable[..., float]:
    def calculate(self: Any, knn_labels: Any, query_labels: Any, **kwargs: Any) -> float:
        hits = (knn_labels[:, :k] == query_labels[:, None]).any(dim=1)
        return float(hits.double().mean())

    return calculate


def run_anchor(
    embeddings: Any, labels: Any, kmeans_seed: int = 1234
) -> tuple[dict[str, float], dict[str, float]]:
    """AccuracyCalculator with faiss k-NN (k = max K) and faiss k-means, plus Recall@K methods.

    Recall@K is added the way PML documents custom metrics (``calculate_<name>`` methods on a
    subclass), reading the same faiss neighbour lists as its other metrics.
    """
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKMeans, FaissKNN

    methods = {f"calculate_recall_at_{k}": _recall_method(k) for k in KS}
    calculator_class = type("RecallAccuracyCalculator", (AccuracyCalculator,), methods)
    knn, kmeans = _Timed(FaissKNN()), _Timed(FaissKMeans(niter=20, seed=kmeans_seed))
    calculator = calculator_class(
        include=(
            *(f"recall_at_{k}" for k in KS),
            "precision_at_1",
            "r_precision",
            "mean_average_precision_at_r",
            "NMI",
        ),
        k=max(KS),
        device=torch.device("cpu"),
        knn_func=knn,
        kmeans_func=kmeans,
    )
    start = time.perf_counter()
    normalized = torch.nn.functional.normalize(embeddings, dim=1)
    raw = calculator.get_accuracy(normalized, labels, ref_includes_query=True)
    total = time.perf_counter() - start
    metrics = {f"recall@{k}": raw[f"recall_at_{k}"] for k in KS}
    metrics |= {"p@1": raw["precision_at_1"], "r_precision": raw["r_precision"]}
    metrics |= {"map@r": raw["mean_average_precision_at_r"], "nmi": raw["NMI"]}
    metrics["kmeans_objective"] = kmeans_objective(embeddings, kmeans.last)
    timings = {"total_s": total, "knn_s": knn.seconds, "kmeans_s": kmeans.seconds}
    timings["cpu_s"] = time.process_time()
    return metrics, timings


def worker(side: str, data_path: str) -> None:
    """Child process: load data, evaluate with one side, print one JSON line."""
    import torch

    data = np.load(data_path)
    embeddings, labels = (
        torch.from_numpy(data["embeddings"]),
        torch.from_numpy(data["labels"]),
    )
    baseline_mb = rss_now_mb()
    if side == "ours":
        metrics, timings = run_ours(embeddings, labels)
    elif side == "anchor":
        metrics, timings = run_anchor(embeddings, labels)
    else:  # the anchor's NMI under a second faiss seed, for the NMI noise level
        metrics, timings = run_anchor(embeddings, labels, kmeans_seed=4321)
    peak = peak_rss_mb()
    report = {
        "metrics": metrics,
        "timings": timings,
        "peak_mb": peak,
        "baseline_mb": baseline_mb,
    }
    report["threads"] = torch.get_num_threads()
    print(json.dumps(report))


# ----------------------------------------------------------------------------- driver
@dataclass
class SideResult:
    metrics: dict[str, float]
    timings: dict[str, float]
    peak_mb: float
    baseline_mb: float


def run_side(side: str, data_path: Path, threads: int) -> SideResult:
    command = [sys.executable, __file__, "--worker", side, "--data", str(data_path)]
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    completed = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return SideResult(
        report["metrics"], report["timings"], report["peak_mb"], report["baseline_mb"]
    )


def print_comparison(dim: int, num_items: int, ours: SideResult, anchor: SideResult) -> bool:
    ratio = ours.timings["total_s"] / anchor.timings["total_s"]
    worst = max(abs(ours.metrics[m] - anchor.metrics[m]) for m in METRICS)
    print(f"\n== dim {dim}, {num_items} items ==")
    print(f"{'metric':<14}{'ours':>12}{'anchor':>12}{'|diff|':>12}")
    for name in METRICS:
        diff = abs(ours.metrics[name] - anchor.metrics[name])
        print(f"{name:<14}{ours.metrics[name]:>12.6f}{anchor.metrics[name]:>12.6f}{diff:>12.2e}")
    print(
        f"{'nmi':<14}{ours.metrics['nmi']:>12.6f}{anchor.metrics['nmi']:>12.6f}"
        f"{abs(ours.metrics['nmi'] - anchor.metrics['nmi']):>12.2e}"
    )
    print(
        f"k-means objective (sum of squared distances to cluster means, lower is better): ours "
        f"{ours.metrics['kmeans_objective']:.2f}, anchor {anchor.metrics['kmeans_objective']:.2f}"
    )
    print("time (s)   ours:   " + ", ".join(f"{k} {v:.2f}" for k, v in ours.timings.items()))
    print("time (s)   anchor: " + ", ".join(f"{k} {v:.2f}" for k, v in anchor.timings.items()))
    print(f"time ratio ours/anchor: {ratio:.3f}  (goal <= {GOALS['time_ratio']})")
    for side, result in (("ours", ours), ("anchor", anchor)):
        own = result.peak_mb - result.baseline_mb
        print(f"peak RSS {side:<7}{result.peak_mb / 1024:.2f} GB (evaluation's own: {own:.0f} MB)")
    print(f"max |diff| over retrieval metrics: {worst:.2e}  (goal <= {GOALS['max_abs_diff']})")
    return (
        ratio <= GOALS["time_ratio"]
        and ours.peak_mb / 1024 <= GOALS["peak_gb"]
        and worst <= GOALS["max_abs_diff"]
    )


def median_run(runs: list[SideResult]) -> SideResult:
    """The run with the median total time (the upper median for an even count)."""
    return sorted(runs, key=lambda run: run.timings["total_s"])[len(runs) // 2]


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main(size: str, dims: list[int], nmi_noise: bool, threads: int, repeats: int) -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, size={size}, threads={threads}")
    with tempfile.TemporaryDirectory() as tmp:
        for dim in dims:
            embeddings, labels = synthetic_embeddings(size, dim)
            data_path = Path(tmp) / f"data_{dim}.npz"
            np.savez(data_path, embeddings=embeddings, labels=labels)
            runs: dict[str, list[SideResult]] = {"ours": [], "anchor": []}
            for repeat in range(repeats):
                for side in ("ours", "anchor") if repeat % 2 == 0 else ("anchor", "ours"):
                    runs[side].append(run_side(side, data_path, threads))
                    total = runs[side][-1].timings["total_s"]
                    print(f"  {side:<7} run {repeat + 1}: {total:.2f} s (load {load_average()})")
            if repeats > 1:
                ratios = sorted(
                    o.timings["total_s"] / a.timings["total_s"]
                    for o, a in zip(runs["ours"], runs["anchor"], strict=True)
                )
                print(f"  per-repeat time ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
            ours, anchor = median_run(runs["ours"]), median_run(runs["anchor"])
            met = print_comparison(dim, len(labels), ours, anchor)
            if nmi_noise:
                second = run_side("anchor_seed2", data_path, threads)
                spread = abs(second.metrics["nmi"] - anchor.metrics["nmi"])
                print(
                    f"anchor NMI under another faiss seed: {second.metrics['nmi']:.6f} "
                    f"(|diff| {spread:.2e}: the noise level of NMI itself); its k-means "
                    f"objective {second.metrics['kmeans_objective']:.2f}"
                )
            print("all goals met" if met else "some goal NOT met (see above)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--dims", default="64,512", help="comma-separated embedding sizes")
    parser.add_argument(
        "--no-nmi-noise",
        action="store_true",
        help="skip the second anchor run that measures NMI's seed-to-seed spread",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for both sides (OMP_NUM_THREADS / MKL_NUM_THREADS)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="alternate the two sides this often; medians",
    )
    parser.add_argument(
        "--worker", choices=["ours", "anchor", "anchor_seed2"], help=argparse.SUPPRESS
    )
    parser.add_argument("--data", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        worker(arguments.worker, arguments.data)
    else:
        main(
            arguments.size,
            [int(d) for d in arguments.dims.split(",")],
            not arguments.no_nmi_noise,
            arguments.threads,
            arguments.repeats,
        )
