"""Run a study group on this machine: W worker processes (or this process when W = 1), with a
progress bar of trials done, pruned and failed, and the best validation score so far.

Every check that can fail on bad input (names, budget, data, batch composition, the storage and
the study's set-up) runs before the first trial; a second command with the same options joins or
continues the study and never runs it past its budget.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dml_bench.errors import UserError
from dml_bench.methods import METHODS
from dml_bench.train.device import resolve_device
from dml_bench.train.sampling import BatchPlan
from dml_bench.tune.folds import fold_data, load_fold_source
from dml_bench.tune.plan import StudyPlan
from dml_bench.tune.record import export_study, now
from dml_bench.tune.study import Counts, create_or_join
from dml_bench.tune.worker import counts, run_worker

logger = logging.getLogger(__name__)

ProgressFactory = Callable[..., Any]
EXIT_INTERRUPTED = 130


class WorkerFailedError(UserError):
    """A worker process stopped with an error before the study was done."""


@dataclass(frozen=True)
class TuneOutcome:
    counts: dict[str, Counts]
    record: Path
    wall_s: float


def preflight(plan: StudyPlan, device_here: bool = True) -> None:
    """What a trial would meet at start-up, checked once per method before anything is written
    (``device_here=False``: the trials train on a cluster, whose devices are checked there)."""
    for config in plan.base:
        if device_here:
            resolve_device(config.device)
        source = load_fold_source(config, plan.budget.folds)
        data = fold_data(source, plan.budget.folds, 0, plan.budget.seed)
        needs = METHODS.get(config.method).batch_needs(config.method_config)
        needs.check_batch_size(config.batch_size, config.method)
        BatchPlan(data.train.labels, config.batch_size, config.seed, needs.m_per_class)


class StudyProgress:
    """A bar over all methods' trials; the postfix names pruned, failed and best per method."""

    def __init__(self, plan: StudyPlan, factory: ProgressFactory | None) -> None:
        self.plan = plan
        total = plan.budget.trials * len(plan.methods)
        self.bar = (
            factory(total=total, desc=f"tune {plan.group}", unit="trial") if factory else None
        )
        self.refresh()

    def refresh(self) -> dict[str, Counts]:
        now = {m: counts(self.plan, m) for m in self.plan.methods}
        if self.bar is not None:
            self.bar.n = sum(min(c.finished, self.plan.budget.trials) for c in now.values())
            self.bar.set_postfix_str(describe_counts(now), refresh=False)
            self.bar.refresh()
        return now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe_counts(now: dict[str, Counts]) -> str:
    done = sum(c.finished for c in now.values())
    pruned = sum(c.pruned for c in now.values())
    failed = sum(c.failed for c in now.values())
    best = ", ".join(f"{m} {c.best:.3f}" for m, c in now.items() if c.best is not None)
    return f"done {done}, pruned {pruned}, failed {failed}; best {best or '-'}"


def prepare(plan: StudyPlan, device_here: bool = True) -> None:
    """Every check, then create or join the study group's studies (the first write)."""
    preflight(plan, device_here)
    create_or_join(plan)


def tune_locally(plan: StudyPlan, workers: int, progress: ProgressFactory | None) -> TuneOutcome:
    """Run the (prepared) study group to its budget with ``workers`` processes."""
    started, clock = now(), time.perf_counter()
    bar = StudyProgress(plan, progress)
    try:
        if workers == 1:
            run_worker(plan, 0, on_trial=bar.refresh)
        else:
            _run_processes(plan, workers, bar)
    finally:
        final = bar.refresh()
        bar.close()
        wall = time.perf_counter() - clock
        session = {"started": started, "ended": now(), "workers": workers, "wall_s": wall}
        record = export_study(plan, session)
    return TuneOutcome(final, record, wall)


def _worker_process(plan: StudyPlan, index: int, threads: int) -> None:
    """The body of a local worker process (module level, so it can be spawned). On CPU the
    workers share the cores: each gets its share of threads instead of all of them."""
    import torch

    from dml_bench.cli.main import configure_logging

    configure_logging(False)
    torch.set_num_threads(threads)
    try:
        run_worker(plan, index)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except UserError as exc:
        logger.error("worker %d: %s", index, exc)
        sys.exit(2)


def _run_processes(plan: StudyPlan, workers: int, bar: StudyProgress) -> None:
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(target=_worker_process, args=(plan, i, threads), daemon=False)
        for i in range(workers)
    ]
    for p in processes:
        p.start()
    try:
        while any(p.is_alive() for p in processes):
            bar.refresh()
            time.sleep(1.0)
    except KeyboardInterrupt:
        # The workers got the same Ctrl-C (one process group): each stops its trial at the next
        # step. Give them time to record it, then make sure none is left behind.
        for p in processes:
            p.join(5)
        for p in processes:  # not in our process group (e.g. a signal sent to us alone)
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        for p in processes:
            p.join(60)
        for p in processes:
            if p.is_alive():
                p.terminate()
                p.join()
        raise
    codes = [p.exitcode for p in processes]
    if any(code != 0 for code in codes):
        now = bar.refresh()
        if not all(c.finished >= plan.budget.trials for c in now.values()):
            raise WorkerFailedError(
                f"Worker processes of study {plan.group!r} stopped with exit codes {codes} "
                "before the study was done (their errors are printed above). Fix the cause and "
                "run the same command again: it continues the study."
            )
