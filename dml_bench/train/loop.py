"""The one training loop every method runs through.

The host owns the control flow (STYLE.md, habit 6): it samples batches as the method asks, embeds,
lets the method mine (under ``no_grad``) and compute its loss, steps one optimiser whose parameter
groups are the network and the loss's own parameters (the proxies, with their own learning rate),
evaluates on the test classes every ``eval_every`` steps (and at step 0, so every convergence curve
starts from the untrained network), and checkpoints every ``checkpoint_every`` steps so that a
killed run resumes exactly. What a run writes besides its records is called from here at four
points: the kept model (:mod:`dml_bench.train.keep`) and the trackers (:mod:`dml_bench.track`).

The file is a little long because the whole loop is kept in one place, read top to bottom; the
outputs above live in their own modules and take one line each here.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from dml_bench.data import DMLDataset
from dml_bench.errors import RunFailedError
from dml_bench.methods import METHODS, Method, build_method
from dml_bench.models import Embedder, build_embedder
from dml_bench.store.env import machine_load
from dml_bench.store.records import RETRIEVALS_FILE
from dml_bench.store.write import RunFolder
from dml_bench.track import start_trackers
from dml_bench.train.checkpoint import load_checkpoint, restore_rng_states, save_checkpoint
from dml_bench.train.config import RunConfig
from dml_bench.train.data import (
    RunData,
    SeededItems,
    collate,
    diagnostic_indices,
    resolve_trunk,
)
from dml_bench.train.device import DevicePolicy, autocast, device_policy, to_device
from dml_bench.train.evaluation import (
    EmbeddingProgress,
    compute_diagnostics,
    embed_dataset,
    evaluate_split,
    retrieval_examples,
    untrained_key,
)
from dml_bench.train.interrupt import StopFlag, stop_requests
from dml_bench.train.keep import keep_final, keep_if_best
from dml_bench.train.recording import write_summary
from dml_bench.train.sampling import BatchPlan, StepBatchSampler
from dml_bench.train.seeding import run_generator, seed_everything, seeded_global_rng

logger = logging.getLogger(__name__)

FINITE_CHECK_EVERY = 5  # steps between host syncs that check the loss is finite


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix(
        self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True
    ) -> Any: ...

    def close(self) -> Any: ...


ProgressFactory = Callable[..., ProgressBar]


class _NoProgress:
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def update(self, n: int = 1) -> None: ...

    def set_postfix(
        self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True
    ) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunState:
    """What a checkpoint restores besides the model and optimiser."""

    step: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # process CPU seconds over the spans of elapsed_s (records.py)
    rows: list[dict[str, Any]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LastEmbeddings:
    """The test embeddings of the latest evaluation, reused for the retrieval examples."""

    step: int = -1
    embeddings: torch.Tensor | None = None
    labels: torch.Tensor | None = None


@dataclass
class RunResult:
    run_id: str
    status: str
    rows: list[dict[str, Any]]
    reason: str | None = None


def build_optimizer(model: nn.Module, method: Method, config: RunConfig) -> torch.optim.Optimizer:
    """One optimiser, two parameter groups: the network, and the loss's own parameters (proxies)
    at ``method_config.loss_lr`` (docs/protocol.md: proxies need their own, larger learning rate)."""
    groups: list[dict[str, Any]] = [
        {
            "params": [p for p in model.parameters() if p.requires_grad],
            "lr": config.lr,
            "name": "model",
        }
    ]
    loss_params = [p for p in method.loss.parameters() if p.requires_grad]
    if loss_params:
        lr = method.config.loss_lr if method.config.loss_lr is not None else config.lr
        groups.append({"params": loss_params, "lr": lr, "name": "loss", "weight_decay": 0.0})
    for g in groups:
        g["initial_lr"] = g["lr"]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        # The Inception recipe the paper follows: decay (alpha) 0.9, epsilon 1.0.
        return torch.optim.RMSprop(
            groups, lr=config.lr, alpha=0.9, eps=1.0, momentum=0.9, weight_decay=config.weight_decay
        )
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def set_learning_rates(optimizer: torch.optim.Optimizer, config: RunConfig, epoch: float) -> None:
    """Exponential decay by ``lr_decay`` every ``lr_decay_epochs``: a pure function of the step,
    so a resumed run needs no scheduler state."""
    factor = config.lr_decay ** math.floor(epoch / config.lr_decay_epochs)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def prepare_model(config: RunConfig, data: RunData, device: torch.device) -> Embedder:
    """The network, initialised from the run's seed (on the CPU, so the same on every device)."""
    with seeded_global_rng(config.seed):
        model = build_embedder(
            resolve_trunk(config, data.spec),
            data.spec.channels,
            config.embedding_size,
            pretrained=config.pretrained,
            freeze_bn=config.freeze_bn,
        )
    policy = device_policy(device, config.amp, model.trunk_name)
    model = model.to(device)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_run_method(config: RunConfig, data: RunData, device: torch.device) -> Method:
    """The method, its random parameters (proxies) drawn from the run's ``"proxies"`` generator;
    any draw a loss makes from the global RNG while it is built is isolated as well."""
    spec = METHODS.get(config.method)
    with seeded_global_rng(config.seed):
        method = build_method(
            spec,
            config.method_config,
            data.num_train_classes,
            config.embedding_size,
            generator=run_generator(config.seed, "proxies"),
        )
    method.loss.to(device)
    if method.miner is not None:
        method.miner.to(device)
    return method


def batches(
    data: RunData, plan: BatchPlan, config: RunConfig, start: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches for steps ``start..steps-1``; each item carries its own augmentation seed."""
    loader = torch.utils.data.DataLoader(
        SeededItems(data.train),
        batch_sampler=StepBatchSampler(plan, start, config.steps),
        collate_fn=collate,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if config.num_workers > 0 else None,
    )
    return iter(loader)


def train_run(
    config: RunConfig,
    data: RunData,
    folder: RunFolder,
    device: torch.device,
    progress: ProgressFactory | None = None,
) -> RunResult:
    """Train one run into ``folder``, resuming from its checkpoint if there is one.

    Ctrl-C (SIGINT) is taken at the next step boundary: the run is checkpointed there and recorded
    as interrupted, then KeyboardInterrupt propagates. A second Ctrl-C stops at once.
    """
    seed_everything(config.seed)
    trainer = _Trainer(build_context(config, data, folder, device, progress or _NoProgress))
    trackers, status = trainer.trackers, "interrupted"
    try:
        with stop_requests() as stop:
            try:
                trainer.run(stop)
            except KeyboardInterrupt:
                trainer.interrupted()
                raise
            except RunFailedError as exc:
                folder.write_status("failed", trainer.state.step, str(exc))
                status = "failed"
                return RunResult(folder.run_id, "failed", trainer.state.rows, str(exc))
            finally:
                trainer.bar.close()
        finish_run(trainer.ctx)
        status = "completed"
        return RunResult(folder.run_id, "completed", trainer.state.rows)
    finally:
        trackers.finish(status, folder.path)


@dataclass
class RunContext:
    """One run while it trains: what it was given, what was built for it, and its counters.

    The loop's helpers (:func:`train_step`, :func:`evaluation_row`, :func:`finish_run`) take this
    one object instead of the many values it holds.
    """

    config: RunConfig
    data: RunData
    folder: RunFolder
    device: torch.device
    progress: ProgressFactory
    model: Embedder
    method: Method
    optimizer: torch.optim.Optimizer
    policy: DevicePolicy
    scaler: torch.amp.GradScaler
    plan: BatchPlan
    diag: list[int]
    state: RunState = field(default_factory=RunState)
    last: LastEmbeddings = field(default_factory=LastEmbeddings)


def build_context(
    config: RunConfig,
    data: RunData,
    folder: RunFolder,
    device: torch.device,
    progress: ProgressFactory = _NoProgress,
) -> RunContext:
    """Build the network, method, optimiser and batch plan of a run (nothing restored yet)."""
    model = prepare_model(config, data, device)
    method = build_run_method(config, data, device)
    policy = device_policy(device, config.amp, model.trunk_name)
    return RunContext(
        config=config,
        data=data,
        folder=folder,
        device=device,
        progress=progress,
        model=model,
        method=method,
        optimizer=build_optimizer(model, method, config),
        policy=policy,
        scaler=torch.amp.GradScaler(device.type, enabled=policy.grad_scaler),
        plan=BatchPlan(
            data.train.labels, config.batch_size, config.seed, method.batch_needs.m_per_class
        ),
        diag=diagnostic_indices(
            data.train.labels, config.diagnostic_classes, config.diagnostic_per_class, config.seed
        ),
    )


class _Trainer:
    """The control flow of one run over its :class:`RunContext`: steps, evaluations, checkpoints."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.config, self.folder = ctx.config, ctx.folder
        self.window: list[torch.Tensor] = []
        self.start_clock()
        self.restore()
        self.trackers = start_trackers(ctx.config, ctx.folder)
        self.bar = ctx.progress(
            total=ctx.config.steps,
            initial=ctx.state.step,
            desc=ctx.folder.run_id,
            unit="step",
            leave=False,
        )

    @property
    def state(self) -> RunState:
        return self.ctx.state

    # --- persistence ---------------------------------------------------------------------------
    def restore(self) -> None:
        ctx = self.ctx
        checkpoint = load_checkpoint(ctx.folder.path)
        if checkpoint is None:
            return
        ctx.model.load_state_dict(checkpoint["model"])
        ctx.method.loss.load_state_dict(checkpoint["loss"])
        ctx.optimizer.load_state_dict(checkpoint["optimizer"])
        ctx.scaler.load_state_dict(checkpoint["scaler"])
        ctx.state = RunState(**checkpoint["state"])
        restore_rng_states(checkpoint["rng"])
        logger.info("%s: resuming at step %d", ctx.folder.run_id, ctx.state.step)

    def checkpoint(self) -> None:
        ctx = self.ctx
        save_checkpoint(
            ctx.folder.path,
            {
                "model": ctx.model.state_dict(),
                "loss": ctx.method.loss.state_dict(),
                "optimizer": ctx.optimizer.state_dict(),
                "scaler": ctx.scaler.state_dict(),
                "state": ctx.state.checkpoint_fields(),
            },
        )

    def interrupted(self) -> None:
        """Checkpoint at the step boundary the Ctrl-C was taken at. Losses not yet checked are
        checked first: a non-finite one fails the run instead of being saved."""
        try:
            self.flush_losses(check=True)
        except RunFailedError as exc:
            self.folder.write_status("failed", self.state.step, str(exc))
            return
        self.stop_clock()
        self.checkpoint()
        self.folder.write_status("interrupted", self.state.step, "interrupted by the user (Ctrl-C)")

    # --- the loop ------------------------------------------------------------------------------
    def run(self, stop: StopFlag) -> None:
        ctx, config, state = self.ctx, self.config, self.state
        if self.is_eval_step(state.step) and (
            not state.rows or state.rows[-1]["step"] != state.step
        ):
            self.evaluate(stop)
        self.folder.write_status("running", state.step)
        if state.step >= config.steps:
            return
        ctx.model.train()
        self.start_clock()
        needs = ctx.method.batch_needs
        for images, labels in batches(ctx.data, ctx.plan, config, state.step, ctx.device):
            needs.check_labels(labels, ctx.method.name)
            set_learning_rates(
                ctx.optimizer, config, state.step * config.batch_size / len(ctx.data.train)
            )
            self.window.append(train_step(ctx, images, labels))
            state.step += 1
            at_eval, at_checkpoint = (
                self.is_eval_step(state.step),
                self.is_checkpoint_step(state.step),
            )
            if len(self.window) == FINITE_CHECK_EVERY or at_eval or at_checkpoint:
                self.flush_losses(check=True)
            if at_eval:
                self.stop_clock()
                self.evaluate(stop)
                ctx.model.train()
                self.start_clock()
            if at_checkpoint:
                self.stop_clock()
                self.checkpoint()
                self.folder.write_status("running", state.step)
                self.start_clock()
            if stop.requested:
                raise KeyboardInterrupt

    def is_eval_step(self, step: int) -> bool:
        return step == 0 or step % self.config.eval_every == 0 or step == self.config.steps

    def is_checkpoint_step(self, step: int) -> bool:
        return step % self.config.checkpoint_every == 0 and step < self.config.steps

    def start_clock(self) -> None:
        self.tick, self.cpu_tick = time.perf_counter(), time.process_time()

    def stop_clock(self) -> None:
        self.state.elapsed_s += time.perf_counter() - self.tick
        self.state.cpu_s += time.process_time() - self.cpu_tick
        self.start_clock()

    def flush_losses(self, check: bool) -> None:
        """Move the losses of the last few steps to the host: one sync per few steps, not per step."""
        if not self.window:
            return
        values = torch.stack(self.window).float().cpu()
        first = self.state.step - len(self.window) + 1
        self.window = []
        if check:
            check_finite(values, first, self.folder.run_id)
        for value in values.tolist():  # step by step, so the sum never depends on the grouping
            self.state.loss_sum += value
        self.state.loss_count += len(values)
        self.trackers.losses(first, values.tolist())
        self.bar.update(len(values))
        self.bar.set_postfix({"loss": f"{float(values.mean()):.4f}"}, refresh=False)

    def evaluate(self, stop: StopFlag) -> None:
        row = evaluation_row(self.ctx, stop)
        self.state.rows.append(row)
        # Only a finished evaluation consumes the loss accumulators: one interrupted mid-way is
        # redone on resume and must see the same training losses.
        self.state.loss_sum, self.state.loss_count = 0.0, 0
        self.folder.write_metrics(self.state.rows)
        keep_if_best(self.config, self.folder, self.ctx.model, self.state.rows)
        self.trackers.evaluation(row)
        self.bar.set_postfix({"R@1": f"{row.get('recall@1', float('nan')):.3f}"})


def train_step(ctx: RunContext, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimiser step on one batch; returns the loss, still on the device (no host sync)."""
    images, labels = to_device(images, labels, ctx.device, ctx.policy)
    with autocast(ctx.device, ctx.policy):
        embeddings = ctx.model(images)
    loss = ctx.method.compute_loss(embeddings.float(), labels)
    ctx.optimizer.zero_grad(set_to_none=True)
    ctx.scaler.scale(loss).backward()
    ctx.scaler.step(ctx.optimizer)
    ctx.scaler.update()
    return loss.detach()


def check_finite(losses: torch.Tensor, first_step: int, run_id: str) -> None:
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        at = int(bad.nonzero()[0, 0])
        shown = ", ".join(f"{v:.4g}" for v in losses.tolist())
        raise RunFailedError(
            f"Non-finite training loss at step {first_step + at} of run {run_id} "
            f"(losses of steps {first_step}-{first_step + len(losses) - 1}: {shown}). "
            "Lower the learning rate (--lr, or the method's loss_lr) or the softmax scale."
        )


def evaluation_row(ctx: RunContext, stop: StopFlag | None = None) -> dict[str, Any]:
    """One row of ``metrics.csv``: test metrics (and validation and diagnostics) at this step."""
    config, data, state = ctx.config, ctx.data, ctx.state
    start = time.perf_counter()
    ctx.model.eval()
    row: dict[str, Any] = {
        "step": state.step,
        "epoch": state.step * config.batch_size / len(data.train),
        "elapsed_s": state.elapsed_s,
        "cpu_s": state.cpu_s,
        "load1": machine_load(),
        "train_loss": state.loss_sum / state.loss_count if state.loss_count else None,
    }
    row.update(split_metrics(ctx, data.test, "test", stop))
    if data.val is not None:
        val = split_metrics(ctx, data.val, "val", stop)
        row.update({f"val_{k}": v for k, v in val.items()})
    if config.diagnostics and ctx.method.has_diagnostics and len(ctx.diag) >= 4:
        row.update(
            compute_diagnostics(ctx.model, ctx.method, data.train, ctx.diag, config, ctx.device)
        )
    row["eval_s"] = time.perf_counter() - start
    return row


def split_metrics(
    ctx: RunContext, dataset: DMLDataset, split: str, stop: StopFlag | None
) -> dict[str, float]:
    """Metrics of one split at this step. At step 0 they are computed once per network and
    reused by the other runs on the same data (:func:`untrained_key`: exact, keyed by the weights);
    a reused test evaluation leaves ``ctx.last`` alone, so :func:`finish_run` embeds if needed."""
    key = untrained_key(ctx.model, ctx.config, ctx.device, split) if ctx.state.step == 0 else None
    if key is not None and key in ctx.data.untrained_metrics:
        logger.debug("%s: step-0 %s metrics reused (same network)", ctx.folder.run_id, split)
        return dict(ctx.data.untrained_metrics[key])
    metrics, embeddings, labels = evaluate_split(
        ctx.model,
        dataset,
        ctx.data.spec.recall_ks,
        ctx.config,
        ctx.device,
        ctx.progress,
        split,
        stop,
    )
    if split == "test":
        ctx.last.step, ctx.last.embeddings, ctx.last.labels = ctx.state.step, embeddings, labels
    if key is not None:
        ctx.data.untrained_metrics[key] = dict(metrics)
    return metrics


def finish_run(ctx: RunContext) -> None:
    """Record a completed run: its retrieval examples, summary.json, then the status; the
    checkpoint is no longer needed."""
    state, last, test = ctx.state, ctx.last, ctx.data.test
    if last.step == state.step and last.embeddings is not None and last.labels is not None:
        embeddings, labels = last.embeddings, last.labels
    else:
        embeddings, labels = embed_dataset(
            ctx.model, test, ctx.config, ctx.device, EmbeddingProgress()
        )
    examples = retrieval_examples(embeddings, labels, test, ctx.config)
    if examples is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **examples)  # type: ignore[arg-type]
        ctx.folder.write_bytes(RETRIEVALS_FILE, buffer.getvalue())
    keep_final(ctx.config, ctx.data, ctx.model, ctx.folder, state.rows, (embeddings, labels))
    write_summary(ctx.config, ctx.folder, state.rows, state.elapsed_s)
    ctx.folder.write_status("completed", state.step)
    (ctx.folder.path / "checkpoint.pt").unlink(missing_ok=True)
