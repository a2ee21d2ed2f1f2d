"""The one training loop every method runs through.

The host owns the control flow (STYLE.md, habit 6): it samples batches as the method asks, embeds,
lets the method mine (under ``no_grad``) and compute its loss, steps one optimiser whose parameter
groups are the network and the loss's own parameters (the proxies, with their own learning rate),
evaluates on the test classes every ``eval_every`` steps (and at step 0, so every convergence curve
starts from the untrained network), and checkpoints every ``checkpoint_every`` steps so that a
killed run resumes exactly.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from dml_bench.errors import RunFailedError
from dml_bench.methods import METHODS, Method, build_method
from dml_bench.models import Embedder, build_embedder
from dml_bench.store.write import RunFolder
from dml_bench.train.checkpoint import load_checkpoint, restore_rng_states, save_checkpoint
from dml_bench.train.config import RunConfig
from dml_bench.train.data import (
    RunData,
    SeededItems,
    collate,
    diagnostic_indices,
    resolve_trunk,
)
from dml_bench.train.device import autocast, device_policy, to_device
from dml_bench.train.evaluation import (
    EmbeddingProgress,
    compute_diagnostics,
    embed_dataset,
    evaluate_split,
    retrieval_examples,
)
from dml_bench.train.interrupt import StopFlag, stop_requests
from dml_bench.train.sampling import BatchPlan, StepBatchSampler

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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class RunState:
    """What a checkpoint restores besides the model and optimiser."""

    step: int = 0
    elapsed_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0

    def checkpoint_fields(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "rows": self.rows,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
        }


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


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, method: Method, config: RunConfig) -> torch.optim.Optimizer:
    """One optimiser, two parameter groups: the network, and the loss's own parameters (proxies)
    at ``method_config.loss_lr`` (PAPER.md: proxies need their own, larger learning rate)."""
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
    model = build_embedder(
        resolve_trunk(config, data.spec),
        data.spec.channels,
        config.embedding_size,
        pretrained=config.pretrained,
        freeze_bn=config.freeze_bn,
    )
    policy = device_policy(device, config.amp)
    model = model.to(device)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_run_method(config: RunConfig, data: RunData, device: torch.device) -> Method:
    spec = METHODS.get(config.method)
    method = build_method(spec, config.method_config, data.num_train_classes, config.embedding_size)
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
    trainer = _Trainer(config, data, folder, device, progress or _NoProgress)
    with stop_requests() as stop:
        try:
            trainer.run(stop)
        except KeyboardInterrupt:
            trainer.interrupted()
            raise
        except RunFailedError as exc:
            folder.write_status("failed", trainer.state.step, str(exc))
            return RunResult(folder.run_id, "failed", trainer.state.rows, str(exc))
        finally:
            trainer.bar.close()
    trainer.finish()
    return RunResult(folder.run_id, "completed", trainer.state.rows)


class _Trainer:
    """The state of one run while it trains: network, method, optimiser, counters."""

    def __init__(
        self,
        config: RunConfig,
        data: RunData,
        folder: RunFolder,
        device: torch.device,
        progress: ProgressFactory,
    ) -> None:
        self.config, self.data, self.folder, self.device = config, data, folder, device
        self.progress = progress
        self.model = prepare_model(config, data, device)
        self.method = build_run_method(config, data, device)
        self.optimizer = build_optimizer(self.model, self.method, config)
        self.policy = device_policy(device, config.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.policy.grad_scaler)
        self.needs = self.method.batch_needs
        self.plan = BatchPlan(
            data.train.labels, config.batch_size, config.seed, self.needs.m_per_class
        )
        self.state = RunState()
        self.last = LastEmbeddings()
        self.window: list[torch.Tensor] = []
        self.tick = time.perf_counter()
        self.restore()
        self.diag = diagnostic_indices(
            data.train.labels, config.diagnostic_classes, config.diagnostic_per_class, config.seed
        )
        self.bar = progress(
            total=config.steps,
            initial=self.state.step,
            desc=folder.run_id,
            unit="step",
            leave=False,
        )

    # --- persistence ---------------------------------------------------------------------------
    def restore(self) -> None:
        checkpoint = load_checkpoint(self.folder.path)
        if checkpoint is None:
            return
        self.model.load_state_dict(checkpoint["model"])
        self.method.loss.load_state_dict(checkpoint["loss"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = RunState(**checkpoint["state"])
        restore_rng_states(checkpoint["rng"])
        logger.info("%s: resuming at step %d", self.folder.run_id, self.state.step)

    def checkpoint(self) -> None:
        save_checkpoint(
            self.folder.path,
            {
                "model": self.model.state_dict(),
                "loss": self.method.loss.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "state": self.state.checkpoint_fields(),
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
        config, state = self.config, self.state
        if self.is_eval_step(state.step) and (
            not state.rows or state.rows[-1]["step"] != state.step
        ):
            self.evaluate(stop)
        self.folder.write_status("running", state.step)
        if state.step >= config.steps:
            return
        self.model.train()
        self.tick = time.perf_counter()
        for images, labels in batches(self.data, self.plan, config, state.step, self.device):
            self.needs.check_labels(labels, self.method.name)
            set_learning_rates(
                self.optimizer, config, state.step * config.batch_size / len(self.data.train)
            )
            self.window.append(
                train_step(
                    self.model,
                    self.method,
                    self.optimizer,
                    self.scaler,
                    images,
                    labels,
                    self.device,
                    self.policy,
                )
            )
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
                self.model.train()
                self.tick = time.perf_counter()
            if at_checkpoint:
                self.stop_clock()
                self.checkpoint()
                self.folder.write_status("running", state.step)
                self.tick = time.perf_counter()
            if stop.requested:
                raise KeyboardInterrupt

    def is_eval_step(self, step: int) -> bool:
        return step == 0 or step % self.config.eval_every == 0 or step == self.config.steps

    def is_checkpoint_step(self, step: int) -> bool:
        return step % self.config.checkpoint_every == 0 and step < self.config.steps

    def stop_clock(self) -> None:
        self.state.elapsed_s += time.perf_counter() - self.tick
        self.tick = time.perf_counter()

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
        self.bar.update(len(values))
        self.bar.set_postfix({"loss": f"{float(values.mean()):.4f}"}, refresh=False)

    def evaluate(self, stop: StopFlag) -> None:
        row = evaluation_row(
            self.config,
            self.data,
            self.model,
            self.method,
            self.state,
            self.device,
            self.diag,
            self.progress,
            self.last,
            stop,
        )
        self.state.rows.append(row)
        # Only a finished evaluation consumes the loss accumulators: one interrupted mid-way is
        # redone on resume and must see the same training losses.
        self.state.loss_sum, self.state.loss_count = 0.0, 0
        self.folder.write_metrics(self.state.rows)
        self.bar.set_postfix({"R@1": f"{row.get('recall@1', float('nan')):.3f}"})

    def finish(self) -> None:
        finish_run(
            self.config, self.data, self.model, self.folder, self.state, self.device, self.last
        )


def train_step(
    model: Embedder,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    policy: Any,
) -> torch.Tensor:
    images, labels = to_device(images, labels, device, policy)
    with autocast(device, policy):
        embeddings = model(images)
    loss = method.compute_loss(embeddings.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
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


def evaluation_row(
    config: RunConfig,
    data: RunData,
    model: Embedder,
    method: Method,
    state: RunState,
    device: torch.device,
    diag: list[int],
    progress: ProgressFactory,
    last: LastEmbeddings,
    stop: StopFlag | None = None,
) -> dict[str, Any]:
    """One row of ``metrics.csv``: test metrics (and validation and diagnostics) at this step."""
    start = time.perf_counter()
    model.eval()
    row: dict[str, Any] = {
        "step": state.step,
        "epoch": state.step * config.batch_size / len(data.train),
        "elapsed_s": state.elapsed_s,
        "train_loss": state.loss_sum / state.loss_count if state.loss_count else None,
    }
    test, last.embeddings, last.labels = evaluate_split(
        model, data.test, data.spec.recall_ks, config, device, progress, "test", stop
    )
    last.step = state.step
    row.update(test)
    if data.val is not None:
        val, _, _ = evaluate_split(
            model, data.val, data.spec.recall_ks, config, device, progress, "val", stop
        )
        row.update({f"val_{k}": v for k, v in val.items()})
    if config.diagnostics and method.proxy_loss is not None and len(diag) >= 4:
        row.update(compute_diagnostics(model, method, data.train, diag, config, device))
    row["eval_s"] = time.perf_counter() - start
    return row


def finish_run(
    config: RunConfig,
    data: RunData,
    model: Embedder,
    folder: RunFolder,
    state: RunState,
    device: torch.device,
    last: LastEmbeddings,
) -> None:
    if last.step == state.step and last.embeddings is not None and last.labels is not None:
        embeddings, labels = last.embeddings, last.labels
    else:
        embeddings, labels = embed_dataset(model, data.test, config, device, EmbeddingProgress())
    examples = retrieval_examples(embeddings, labels, data.test, config)
    if examples is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **examples)  # type: ignore[arg-type]
        folder.write_bytes("retrievals.npz", buffer.getvalue())
    metric_names = [k for k in state.rows[-1] if k not in ("step", "epoch", "elapsed_s", "eval_s")]
    best_index = int(np.nanargmax([r.get("recall@1", float("nan")) for r in state.rows]))
    folder.write_json(
        "summary.json",
        {
            "run_id": folder.run_id,
            "method": config.method,
            "variant": config.variant or config.method,
            "dataset": config.dataset,
            "seed": config.seed,
            "status": "completed",
            "steps": state.step,
            "train_seconds": state.elapsed_s,
            "final": {k: state.rows[-1].get(k) for k in metric_names},
            "best": {k: state.rows[best_index].get(k) for k in metric_names},
            "best_step": state.rows[best_index]["step"],
        },
    )
    folder.write_status("completed", state.step)
    (folder.path / "checkpoint.pt").unlink(missing_ok=True)
