"""Training-loop overhead: dml-bench's loop against a minimal hand-written loop.

Both loops train the same network (small_cnn), with the same method (loss and miner), batches of
the same kind and the same device, from the same initial weights; evaluation and checkpointing are
excluded from dml-bench's timing (its ``elapsed_s`` counts training only). The hand-written loop
draws its batches as a researcher would, from pytorch-metric-learning's ``MPerClassSampler`` (or
a ``torch.randperm``) epoch after epoch, not from dml-bench's ``BatchPlan``, so that the cost of
dml-bench's resumable sampling is measured too (sharing it hid an 80 ms-per-step sampler bug).
The hand-written loop keeps network and batches in channels_last, as a careful user would. The
figure is steps/s of dml-bench divided by steps/s of the hand-written loop (goal: >= 0.95):
the median of the per-repeat ratios (each repeat runs the two loops back to back, so a drift in
machine load hits both sides of one ratio alike), with the ratio of the median speeds beside it.

A second figure compares ``embed_dataset`` (what every evaluation runs) with a hand-written
no-grad loop over the test glyphs in channels_last: items/s, same network and batch size
(goal: >= 0.95).

    python benchmarks/train.py [--steps 300] [--method proxy_nca] [--repeats 3] [--device auto]
        [--embed-repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from pytorch_metric_learning.samplers import MPerClassSampler

from dml_bench.data.hershey import to_unit_range
from dml_bench.store.write import claim_run
from dml_bench.train import ExperimentRequest, plan_runs
from dml_bench.train.data import load_run_data
from dml_bench.train.device import resolve_device
from dml_bench.train.evaluation import EmbeddingProgress, embed_dataset
from dml_bench.train.loop import (
    build_optimizer,
    build_run_method,
    prepare_model,
    seed_everything,
    train_run,
)


def plain_batches(
    labels: list[int], batch_size: int, m_per_class: int | None, seed: int
) -> Iterator[list[int]]:
    """Batches drawn without dml-bench: PML's MPerClassSampler (methods that need positives) or a
    torch permutation, a new one each epoch."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        if m_per_class is None:
            order = torch.randperm(len(labels), generator=generator).tolist()
        else:
            sampler = MPerClassSampler(
                labels, m_per_class, batch_size=batch_size, length_before_new_iter=len(labels)
            )
            order = [int(i) for i in sampler]
        for k in range(len(order) // batch_size):
            yield order[k * batch_size : (k + 1) * batch_size]


def hand_written_loop(config, data, device: torch.device) -> float:
    """The loop a researcher would write: sample, index the in-memory glyphs, embed, loss, step."""
    seed_everything(config.seed)
    # What a careful user writes on any device: network and batches in channels_last.
    model = prepare_model(config, data, device).to(memory_format=torch.channels_last)
    method = build_run_method(config, data, device)
    optimizer = build_optimizer(model, method, config)
    batches = plain_batches(
        list(data.train.labels), config.batch_size, method.batch_needs.m_per_class, config.seed
    )
    images, labels = data.train.images, data.train.label_tensor
    model.train()
    start = time.perf_counter()
    for _ in range(config.steps):
        index = torch.as_tensor(next(batches))
        x = to_unit_range(images[index]).to(device, memory_format=torch.channels_last)
        y = labels[index].to(device)
        loss = method.compute_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return config.steps / (time.perf_counter() - start)


def hand_written_embedding(model: torch.nn.Module, data, batch_size: int, device) -> float:
    """Items/s of a plain no-grad loop over the test glyphs: slice, scale, embed, concatenate."""
    model = model.to(memory_format=torch.channels_last).eval()
    images = data.test.images
    start = time.perf_counter()
    with torch.inference_mode():
        chunks = [
            model(
                to_unit_range(images[i : i + batch_size]).to(
                    device, memory_format=torch.channels_last
                )
            )
            for i in range(0, len(images), batch_size)
        ]
        torch.cat(chunks).cpu()
    return len(images) / (time.perf_counter() - start)


def dml_bench_embedding(model: torch.nn.Module, config, data, device: torch.device) -> float:
    """Items/s of ``embed_dataset`` over the test split, as every evaluation calls it."""
    start = time.perf_counter()
    embeddings, _ = embed_dataset(model, data.test, config, device, EmbeddingProgress())
    embeddings.cpu()
    return len(data.test) / (time.perf_counter() - start)


def embedding_figures(config, data, device: torch.device, repeats: int) -> None:
    """The embedding half: ``embed_dataset`` against the hand-written loop, same network, same
    batch size (``eval_batch_size``), alternating, median of the per-repeat ratios."""
    seed_everything(config.seed)
    model = prepare_model(config, data, device)
    ours, theirs = [], []
    for repeat in range(repeats + 1):  # the first pair warms both up and is not counted
        if repeat % 2 == 0:
            t = hand_written_embedding(model, data, config.eval_batch_size, device)
            o = dml_bench_embedding(model, config, data, device)
        else:
            o = dml_bench_embedding(model, config, data, device)
            t = hand_written_embedding(model, data, config.eval_batch_size, device)
        if repeat:
            ours.append(o)
            theirs.append(t)
    paired = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(
        f"embedding ({len(data.test)} test glyphs, batch {config.eval_batch_size}): "
        f"hand-written {statistics.median(theirs):8.0f} items/s, "
        f"embed_dataset {statistics.median(ours):8.0f} items/s"
    )
    print(f"embedding per-repeat ratios: {', '.join(f'{r:.3f}' for r in paired)}")
    print(
        f"embedding ratio embed_dataset / hand-written: {statistics.median(paired):.3f} "
        "(goal >= 0.95)"
    )


def dml_bench_loop(config, data, device: torch.device) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = claim_run(Path(tmp), config.run_id()).folder
        assert folder is not None
        result = train_run(config, data, folder, device)
        folder.release()
    return config.steps / result.rows[-1]["elapsed_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--method", default="proxy_nca")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads for both loops (default: torch's). With 2 threads on a "
        "shared 2-core machine every operation waits for the second thread to be scheduled, "
        "which makes single runs swing by 2x; 1 thread gives steadier pairs.",
    )
    parser.add_argument(
        "--embed-repeats",
        type=int,
        default=5,
        help="repeats of the embedding figure (0: skip it)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    request = ExperimentRequest(
        methods=(args.method,),
        run_params={
            "steps": args.steps,
            "eval_every": args.steps,
            "checkpoint_every": 10**9,
            "batch_size": args.batch_size,
            "device": args.device,
            "diagnostics": False,
            "retrieval_queries": 0,
        },
    )
    (config,) = plan_runs(request)
    data = load_run_data(config)
    device = resolve_device(config.device)
    ours, theirs, loads = [], [], []
    for repeat in range(args.repeats):
        # Back to back, in alternating order, so a drift in machine load or a warm-up effect
        # hits both sides alike.
        if repeat % 2 == 0:
            theirs.append(hand_written_loop(config, data, device))
            ours.append(dml_bench_loop(config, data, device))
        else:
            ours.append(dml_bench_loop(config, data, device))
            theirs.append(hand_written_loop(config, data, device))
        loads.append(os.getloadavg()[0])
    o, t = statistics.median(ours), statistics.median(theirs)
    paired = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(
        f"device: {device}  method: {args.method}  steps: {args.steps}  batch: {args.batch_size}  "
        f"threads: {torch.get_num_threads()}"
    )
    print(
        f"hand-written loop : {t:8.1f} steps/s   (repeats: {', '.join(f'{v:.1f}' for v in theirs)})"
    )
    print(
        f"dml-bench loop    : {o:8.1f} steps/s   (repeats: {', '.join(f'{v:.1f}' for v in ours)})"
    )
    print(f"per-repeat ratios  : {', '.join(f'{r:.3f}' for r in paired)}")
    print(f"1-min load average : {', '.join(f'{v:.2f}' for v in loads)}")
    print(
        f"ratio dml-bench / hand-written: {statistics.median(paired):.3f} (median of per-repeat "
        f"ratios; ratio of median speeds {o / t:.3f})  (goal >= 0.95)"
    )
    if args.embed_repeats:
        embedding_figures(config, data, device, args.embed_repeats)


if __name__ == "__main__":
    main()
