"""Benchmark: what checkpointing costs a run, against the training step it interrupts.

The run is the default ``RunConfig`` (hershey at 32 px, small_cnn, proxy_nca, batch 64, Adam), as
``dml-bench run --methods proxy_nca`` trains it. The script builds the run's network, method and
optimiser with the training loop's own functions, trains ``--steps`` steps (timing each, after
``--warmup`` untimed ones, so Adam's state exists and is saved), then calls the loop's
``save_checkpoint`` ``--saves`` times on the same state. A checkpoint is serialisation
(``torch.save`` of model, proxies, optimiser, scaler, RNG states and the recorded rows) plus an
atomic write (temporary file, fsync, rename, fsync of the folder); both are timed.

The figure that matters is the amortised overhead: one save divided by the training time between
two saves (``checkpoint_every`` steps). The goal is below 1%.

Usage:  python benchmarks/checkpoint.py [--steps 40] [--saves 20] [--data-root DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dml_bench.store.write import RunFolder, atomic_write_bytes
from dml_bench.train import ExperimentRequest, plan_runs
from dml_bench.train.checkpoint import checkpoint_bytes, save_checkpoint
from dml_bench.train.config import RunConfig
from dml_bench.train.data import load_run_data
from dml_bench.train.device import resolve_device
from dml_bench.train.loop import RunState, batches, build_context, seed_everything, train_step

GOAL_AMORTISED = 0.01  # a checkpoint may cost at most 1% of the training between two of them


def train_and_time(
    config: RunConfig, device: torch.device, steps: int, warmup: int
) -> tuple[dict[str, Any], list[float]]:
    """Train ``warmup + steps`` steps of the default run; the state to checkpoint and the step
    times (seconds, synchronised on CUDA so a step's time is its own)."""
    seed_everything(config.seed)
    data = load_run_data(config)
    unused = RunFolder(Path("not-written"), resumed=False)  # the steps write no records
    ctx = build_context(config, data, unused, device)
    ctx.model.train()
    times: list[float] = []
    loader = batches(data, ctx.plan, config, 0, device)
    for step, (images, labels) in enumerate(loader):
        if step == warmup + steps:
            break
        start = time.perf_counter()
        loss = train_step(ctx, images, labels)
        loss.item()  # the host sync the loop makes every few steps; here every step
        if step >= warmup:
            times.append(time.perf_counter() - start)
    rows = [{"step": s, "recall@1": 0.5, "nmi": 0.5} for s in range(0, config.steps + 1, 200)]
    state = {
        "model": ctx.model.state_dict(),
        "loss": ctx.method.loss.state_dict(),
        "optimizer": ctx.optimizer.state_dict(),
        "scaler": ctx.scaler.state_dict(),
        "state": RunState(step=warmup + steps, rows=rows).checkpoint_fields(),
    }
    return state, times


@dataclass(frozen=True)
class SaveTimes:
    """Seconds per full save, per serialisation alone and per atomic write alone; file bytes."""

    full: list[float]
    serialise: list[float]
    write: list[float]
    size: int


def time_saves(state: dict[str, Any], saves: int) -> SaveTimes:
    full, serialise, write = [], [], []
    with tempfile.TemporaryDirectory(prefix="dml-bench-ckpt-") as tmp:
        folder = Path(tmp)
        for _ in range(saves):
            start = time.perf_counter()
            save_checkpoint(folder, state)
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            content = checkpoint_bytes(state)
            serialise.append(time.perf_counter() - start)
            start = time.perf_counter()
            atomic_write_bytes(folder / "copy.pt", content)
            write.append(time.perf_counter() - start)
        size = (folder / "checkpoint.pt").stat().st_size
    return SaveTimes(full, serialise, write, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--saves", type=int, default=20, help="timed checkpoint saves")
    parser.add_argument("--data-root", default=None, help="dataset cache (default: ~/.cache)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    run_params = {
        "device": args.device,
        **({"data_root": args.data_root} if args.data_root else {}),
    }
    (config,) = plan_runs(ExperimentRequest(methods=("proxy_nca",), run_params=run_params))
    device = resolve_device(config.device)
    state, step_times = train_and_time(config, device, args.steps, args.warmup)
    saves = time_saves(state, args.saves)

    step = statistics.median(step_times)
    save = statistics.median(saves.full)
    between = config.checkpoint_every * step
    amortised = save / between
    verdict = "meets" if amortised <= GOAL_AMORTISED else "misses"
    lines = [
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        f"run: {config.dataset} {config.method} trunk=small_cnn batch={config.batch_size} "
        f"embedding={config.embedding_size} checkpoint_every={config.checkpoint_every}",
        f"checkpoint size        {saves.size / 1e6:8.2f} MB",
        f"training step (median) {step * 1e3:8.2f} ms   "
        f"(mean {statistics.mean(step_times) * 1e3:.2f})",
        f"save (median)          {save * 1e3:8.2f} ms   = {save / step:.2f} training steps",
        f"  serialise            {statistics.median(saves.serialise) * 1e3:8.2f} ms",
        f"  atomic write + fsync {statistics.median(saves.write) * 1e3:8.2f} ms",
        f"amortised overhead     {amortised * 100:8.3f} %  of the {config.checkpoint_every} "
        f"steps between saves ({verdict} the goal <= {GOAL_AMORTISED:.0%})",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
