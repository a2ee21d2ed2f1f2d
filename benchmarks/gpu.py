"""The CUDA path, measured in one command on one GPU (about 8 minutes on an H100/H200).

Four parts, each printed as it finishes:

1. **glyphs**: the default ``dml-bench run`` (five methods on the embedded glyphs) on
   ``--device``: steps/s per method, seconds per evaluation, final Recall@1 next to the CPU run's
   (``CPU_RECALL_AT_1``, the default run on the 2-core CPU; benchmarks/README.md).
2. **nofuss**: the ``nofuss`` preset (googlenet, ``--no-pretrained``) on a generated
   Cars196-layout tree of photo-sized JPEGs (200 classes x 40 images of 400x300), with
   ``--num-workers`` = the machine's cores: images/s of training and GPU utilisation sampled with
   ``nvidia-smi`` during the run, first decoding the JPEGs, then from a ``dml-bench prepare`` cache.
   Goal: GPU busy >= 90% of training time from the cache.
3. **eval**: ``dml_bench.evaluate`` on the SOP-shaped embeddings of ``benchmarks/eval.py`` on the
   device, against pytorch-metric-learning's ``AccuracyCalculator`` with a torch k-NN on the same
   device (``CustomKNN``): time ratio and peak device memory. Goal: ratio <= 0.5.
4. **tests**: the test suite with the GPU present (``python -m pytest -n <cores> -q``).

    python benchmarks/gpu.py [--device cuda] [--out DIR] [--parts glyphs,nofuss,eval,tests]
    python benchmarks/gpu.py --dry-run --device cpu     # a tiny version of every part, on CPU

``--dry-run`` shrinks every part (a few steps, a few classes, the small embedding set, no test
suite) so that the script itself is tested on a machine without a GPU (tests/benchmarks/).
Without ``nvidia-smi`` the utilisation columns read ``n/a``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARTS = ("glyphs", "nofuss", "eval", "tests")

#: Final Recall@1 of the default run on the 2-core CPU (benchmarks/README.md, issue 20's run).
CPU_RECALL_AT_1 = {
    "proxy_nca": 0.8223,
    "triplet_semihard": 0.7740,
    "nca": 0.7623,
    "lifted_structure": 0.5825,
    "proxy_nca_dynamic": 0.2702,
}
TINY_GLYPHS = [
    "--steps", "4", "--eval-every", "2", "--batch-size", "16", "--embedding-size", "8",
    "--set", "dataset.max_classes=24", "--set", "dataset.images_per_class=4",
    "--set", "dataset.image_size=16",
]  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """Sizes of one invocation: the full measurement, or the dry run's tiny version."""

    device: str
    out: Path
    dry_run: bool
    workers: int
    nofuss_classes: int = 200
    nofuss_per_class: int = 40
    nofuss_image: tuple[int, int] = (400, 300)
    nofuss_steps: int = 300
    eval_size: str = "sop"

    @classmethod
    def build(cls, args: argparse.Namespace) -> Plan:
        workers = args.workers or os.cpu_count() or 1
        if not args.dry_run:
            return cls(args.device, args.out, False, workers)
        return cls(args.device, args.out, True, min(workers, 2), 4, 4, (64, 48), 3, "small")


# ----------------------------------------------------------------------------- helpers
def load_benchmark(name: str) -> ModuleType:
    """Another script of this folder as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@dataclass
class GpuSampler:
    """``nvidia-smi`` utilisation samples (percent) taken every ``interval_ms`` while active.

    Guarded: without ``nvidia-smi`` (a CPU machine, a container without the tool) it takes no
    samples and reports ``n/a``."""

    interval_ms: int = 200
    samples: list[float] = field(default_factory=list)
    _process: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        tool = shutil.which("nvidia-smi")
        if tool is None:
            return self
        command = [
            tool, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
            f"-lms={self.interval_ms}", "--id=0",
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                continue

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self) -> str:
        if not self.samples:
            return "GPU util n/a (no nvidia-smi samples)"
        busy = [s for s in self.samples if s > 0]  # start-up and shut-down read 0
        share = sum(s >= 90 for s in busy) / len(busy) if busy else 0.0
        mean = statistics.mean(busy) if busy else 0.0
        return (
            f"GPU util mean {mean:.0f}% over {len(busy)} busy samples, "
            f">= 90% in {share:.0%} of them"
        )


def dml_bench(*args: str, env: dict[str, str] | None = None) -> float:
    """Run the CLI in a child process; its wall seconds. A failure stops the script loudly."""
    command = [sys.executable, "-m", "dml_bench.cli.main", *args, "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, env=env)
    return time.perf_counter() - start


def run_summaries(results: Path) -> list[dict[str, Any]]:
    """summary.json of every run folder, with the mean evaluation seconds from metrics.csv."""
    import csv

    out = []
    for folder in sorted(p for p in results.iterdir() if (p / "summary.json").exists()):
        summary = json.loads((folder / "summary.json").read_text())
        with (folder / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        summary["eval_s"] = statistics.mean(float(r["eval_s"]) for r in rows)
        summary["evaluations"] = len(rows)
        out.append(summary)
    return out


# ----------------------------------------------------------------------------- the parts
def part_glyphs(plan: Plan) -> None:
    results = plan.out / "glyphs"
    extra = TINY_GLYPHS if plan.dry_run else []
    wall = dml_bench("run", "--device", plan.device, "--results-dir", str(results), *extra)
    print(f"\n[glyphs] default run on {plan.device}: {wall:.1f} s wall")
    print("method | steps/s | s per evaluation (evaluations) | final R@1 | CPU run's R@1")
    for s in run_summaries(results):
        r1 = s["final"].get("recall@1")
        cpu = CPU_RECALL_AT_1.get(s["method"], float("nan"))
        print(
            f"{s['method']} | {s['steps'] / s['train_seconds']:.1f} | "
            f"{s['eval_s']:.2f} ({s['evaluations']}) | {r1:.4f} | {cpu:.4f}"
        )


def make_cars_tree(plan: Plan, root: Path) -> None:
    """A Cars196 layout (``cars196/cars_annos.mat``, ``car_ims/``) of photo-like JPEGs: classes
    spread over both halves of the split, the first half training, the second test."""
    import numpy as np

    from dml_bench.data.fakes import spread_ids, write_cars_annotations

    jpeg = load_benchmark("data").photo_like_jpeg
    rng = np.random.default_rng(0)
    base = root / "cars196"
    width, height = plan.nofuss_image
    records, number = [], 1
    for class_id in spread_ids(plan.nofuss_classes, 196):
        for _ in range(plan.nofuss_per_class):
            relative = f"car_ims/{number:06d}.jpg"
            jpeg(base / relative, plan.nofuss_image, rng)
            records.append((relative, 1, 1, width, height, class_id, int(class_id > 98)))
            number += 1
    write_cars_annotations(base, records)


def part_nofuss(plan: Plan) -> None:
    root = plan.out / "cars-data"
    if not (root / "cars196" / "cars_annos.mat").exists():
        start = time.perf_counter()
        make_cars_tree(plan, root)
        print(f"\n[nofuss] generated the Cars196 tree in {time.perf_counter() - start:.0f} s")
    common = [
        "run", "--dataset", "cars196", "--data-root", str(root), "--preset", "nofuss",
        "--no-pretrained", "--device", plan.device, "--num-workers", str(plan.workers),
        "--methods", "proxy_nca", "--steps", str(plan.nofuss_steps),
        "--eval-every", str(plan.nofuss_steps),
    ]  # fmt: skip
    if plan.dry_run:
        common += ["--batch-size", "4", "--set", "resize=64", "--set", "crop=56"]
    for label, source in (("decoded JPEGs", ["--no-prepared"]), ("prepared cache", [])):
        if not source:
            prepare = ["prepare", "--dataset", "cars196", "--data-root", str(root)]
            prepare += ["--num-workers", str(plan.workers)]
            if plan.dry_run:
                prepare += ["--resize", "64"]
            print(f"[nofuss] prepare: {dml_bench(*prepare):.0f} s")
        results = plan.out / f"nofuss-{'cache' if not source else 'jpeg'}"
        with GpuSampler() as sampler:
            wall = dml_bench(*common, *source, "--results-dir", str(results))
        (summary,) = run_summaries(results)
        batch = json.loads(next(results.glob("*/config.json")).read_text())["batch_size"]
        images_s = summary["steps"] * batch / summary["train_seconds"]
        print(
            f"[nofuss] {label}: {images_s:.0f} training images/s, {wall:.0f} s wall, "
            f"{sampler.summary()}"
        )


def _peak_memory(device: Any) -> str:
    import torch

    if device.type != "cuda":
        return "n/a (not CUDA)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"


def part_eval(plan: Plan) -> None:
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    from dml_bench.eval import evaluate

    bench = load_benchmark("eval")
    device = torch.device(plan.device)
    ks = tuple(bench.KS)
    embeddings_np, labels_np = bench.synthetic_embeddings(plan.eval_size, 64)
    if plan.dry_run:  # a slice keeps the CPU smoke test to seconds
        embeddings_np, labels_np = embeddings_np[:1500], labels_np[:1500]
        ks = tuple(k for k in ks if k < 100)
    embeddings = torch.from_numpy(embeddings_np).to(device)
    labels = torch.from_numpy(labels_np).to(device)

    def timed(fn: Any) -> tuple[Any, float, str]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return value, time.perf_counter() - start, _peak_memory(device)

    ours, t_ours, m_ours = timed(lambda: evaluate(embeddings, labels, ks=ks))
    methods = {f"calculate_recall_at_{k}": bench._recall_method(k) for k in ks}
    calculator = type("RecallAccuracyCalculator", (AccuracyCalculator,), methods)(
        include=(
            *(f"recall_at_{k}" for k in ks),
            "precision_at_1",
            "r_precision",
            "mean_average_precision_at_r",
            "NMI",
        ),
        k=max(ks),
        device=device,
        knn_func=CustomKNN(CosineSimilarity(), batch_size=4096),
    )
    normalized = torch.nn.functional.normalize(embeddings, dim=1)
    raw, t_anchor, m_anchor = timed(
        lambda: calculator.get_accuracy(normalized, labels, ref_includes_query=True)
    )
    print(
        f"\n[eval] {len(labels)} items, 64-d, on {device}: ours {t_ours:.2f} s (peak {m_ours}), "
        f"PML AccuracyCalculator + CustomKNN {t_anchor:.2f} s (peak {m_anchor}); "
        f"ratio {t_ours / t_anchor:.3f} (goal <= 0.5)"
    )
    diff = max(abs(ours[f"recall@{k}"] - raw[f"recall_at_{k}"]) for k in ks)
    diff = max(diff, abs(ours["map@r"] - raw["mean_average_precision_at_r"]))
    print(f"[eval] max |difference| of Recall@K and MAP@R: {diff:.1e}")


def part_tests(plan: Plan) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-n", str(plan.workers), "-rs"]
    start = time.perf_counter()
    code = subprocess.run(command, cwd=REPO).returncode
    print(f"\n[tests] exit code {code} in {time.perf_counter() - start:.0f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, help="where runs and data go (default: a temp dir)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: all cores)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, no test suite")
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; valid: {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dml-bench-gpu-") as tmp:
        args.out = args.out or Path(tmp)
        plan = Plan.build(args)
        parts = args.parts.split(",")
        if plan.dry_run and "tests" in parts:
            parts.remove("tests")
        print(f"benchmarks/gpu.py on {plan.device}, workers {plan.workers}, parts {parts}")
        for part in parts:
            globals()[f"part_{part}"](plan)


if __name__ == "__main__":
    main()
