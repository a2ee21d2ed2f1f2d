"""``--executor ray``: every run of the plan is a Ray task; the driver keeps the records.

The driver (this process, on a node of the cluster) joins the cluster
(:mod:`dml_bench.execute.connect`), claims each run folder to train in the results directory as
``--executor local`` does, starts the :class:`~dml_bench.execute.mirror.RunMirror` actor on its
own node, and submits one task per claimed run (:func:`dml_bench.execute.remote.train_on_node`),
each asking for ``cpus_per_run`` CPUs and, with ``--device cuda``, one GPU. Ray places the tasks
over the nodes and, when a node or worker process dies, runs the task again (``max_retries``); the
new attempt resumes from the run's last checkpoint held by the driver.

Progress: a bar of runs done, with how many run on which node and how many failed; a log line when
a run starts or resumes on a node. Ctrl-C cancels the tasks (each checkpoints at its next step and
records itself as interrupted), waits briefly for them, and leaves every run resumable by the same
command.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dml_bench.errors import UserError
from dml_bench.execute.connect import check_cluster, connect, task_resources
from dml_bench.execute.mirror import Event, RunMirror
from dml_bench.execute.remote import RemoteUserError, train_on_node
from dml_bench.execute.settings import ExecutorSettings
from dml_bench.store.records import CONFIG_FILE
from dml_bench.store.write import RunFolder, claim_run, read_status_record
from dml_bench.train.config import RunConfig
from dml_bench.train.experiment import RunOutcome, forget_if_empty, runs_to_train
from dml_bench.train.loop import ProgressFactory

logger = logging.getLogger(__name__)

#: Times Ray runs a task again after its worker or node died (each attempt resumes).
RETRIES = 3
#: Seconds between polls of the tasks and of the runs' events.
POLL_S = 0.5
#: Seconds to wait, after Ctrl-C, for cancelled runs to checkpoint and record themselves.
CANCEL_WAIT_S = 60.0


def run_on_cluster(
    configs: Sequence[RunConfig],
    results_dir: Path,
    settings: ExecutorSettings,
    *,
    rerun: bool = False,
    progress: ProgressFactory | None = None,
) -> list[RunOutcome]:
    """Train ``configs`` on the Ray cluster of ``settings`` into ``results_dir`` (here)."""
    ray, address = connect(settings)
    try:
        check_cluster(ray, configs, settings)
        runs_to_train(configs, results_dir, rerun)
        logger.info("Ray cluster %s: %s", address, _resources(ray))
        return _Driver(ray, results_dir.resolve(), settings, progress).run(configs, rerun)
    finally:
        ray.shutdown()


def _resources(ray: ModuleType) -> str:
    total = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return f"{nodes} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"


def start_mirror(ray: ModuleType, results_dir: Path) -> Any:
    """The :class:`RunMirror` actor, on this (the driver's) node: it writes into results_dir."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(RunMirror).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
    )
    return actor.remote(str(results_dir))


@dataclass
class _Submitted:
    index: int
    config: RunConfig
    folder: RunFolder


@dataclass
class _Board:
    """What the progress bar shows: runs done and failed, and where the others run."""

    done: int = 0
    failed: int = 0
    where: dict[str, str] = field(default_factory=dict)  # run id -> node

    def postfix(self) -> str:
        per_node = collections.Counter(self.where.values())
        nodes = ", ".join(f"{node} x{n}" for node, n in sorted(per_node.items()))
        where = f" ({nodes})" if nodes else ""
        return f"running {len(self.where)}{where}, failed {self.failed}"


class _Driver:
    def __init__(
        self,
        ray: ModuleType,
        results_dir: Path,
        settings: ExecutorSettings,
        progress: ProgressFactory | None,
    ) -> None:
        self.ray, self.results_dir, self.settings = ray, results_dir, settings
        self.progress = progress
        self.board = _Board()
        self.bar: Any = None
        self.threads = max(1, int(settings.cpus_per_run))

    def run(self, configs: Sequence[RunConfig], rerun: bool) -> list[RunOutcome]:
        outcomes: dict[int, RunOutcome] = {}
        claimed: list[_Submitted] = []
        try:
            for index, config in enumerate(configs):
                claim = claim_run(self.results_dir, config.run_id(), rerun=rerun)
                if claim.folder is None:
                    logger.debug("skip %s: %s", config.run_id(), claim.skip_reason)
                    outcomes[index] = RunOutcome(
                        config.run_id(), config.variant, config.seed, "skipped", claim.skip_reason
                    )
                else:
                    claimed.append(_Submitted(index, config, claim.folder))
            if claimed:
                outcomes.update(self.train(claimed))
        finally:
            for item in claimed:
                item.folder.release()
        return [outcomes[i] for i in sorted(outcomes)]

    def train(self, claimed: list[_Submitted]) -> dict[int, RunOutcome]:
        ray = self.ray
        mirror = start_mirror(ray, self.results_dir)
        ray.get(mirror.allow.remote([item.folder.run_id for item in claimed]))
        task = ray.remote(train_on_node)
        running = {
            task.options(
                **task_resources(item.config, self.settings),
                max_retries=RETRIES,
                retry_exceptions=False,
                name=f"dml-bench {item.folder.run_id}",
            ).remote(item.config, item.folder.run_id, mirror, self.threads): item
            for item in claimed
        }
        if self.progress is not None:
            self.bar = self.progress(total=len(running), desc="runs", unit="run")
        outcomes: dict[int, RunOutcome] = {}
        error: RemoteUserError | None = None
        try:
            while running and error is None:
                finished, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                self.show(ray.get(mirror.drain.remote()))
                for ref in finished:
                    item = running.pop(ref)
                    result = self.result(ref, item)
                    if isinstance(result, RemoteUserError):
                        error = error or result
                        continue
                    outcomes[item.index] = result
                    self.finished(result)
            if error is not None:
                self.cancel(running, mirror)
                raise UserError(f"Run {error.run_id}: {error.message}")
        except KeyboardInterrupt:
            self.cancel(running, mirror)
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
        return outcomes

    def result(self, ref: Any, item: _Submitted) -> RunOutcome | RemoteUserError:
        """The task's outcome; a task lost for good (its worker died more than ``RETRIES``
        times) leaves the run resumable, recorded as interrupted, and counts as failed."""
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            reason = (
                f"its Ray task was lost ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "run the same command again to resume it from its last checkpoint"
            )
            if (item.folder.path / CONFIG_FILE).exists():
                item.folder.write_status("interrupted", _step(item.folder), reason)
            logger.error("run %s: %s", item.folder.run_id, reason)
            return RunOutcome(
                item.folder.run_id, item.config.variant, item.config.seed, "failed", reason
            )
        if isinstance(result, RemoteUserError):
            forget_if_empty(item.folder.path)
        return result

    def finished(self, outcome: RunOutcome) -> None:
        self.board.where.pop(outcome.run_id, None)
        self.board.done += 1
        self.board.failed += outcome.status == "failed"
        logger.info("%s: %s", outcome.run_id, outcome.status)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(self.board.postfix())

    def show(self, events: list[Event]) -> None:
        for event in events:
            if event.kind == "start":
                self.board.where[event.run_id] = event.node
                again = f", attempt {event.attempt}" if event.attempt > 1 else ""
                logger.info("%s: on node %s (pid %d%s)", event.run_id, event.node, event.pid, again)
            elif event.level >= logging.INFO:
                logger.log(event.level, "[%s] %s", event.node, event.message)
        if events and self.bar is not None:
            self.bar.set_postfix_str(self.board.postfix())

    def cancel(self, running: dict[Any, _Submitted], mirror: Any) -> None:
        """Cancel the tasks still running; each checkpoints at its next step and records itself
        as interrupted (pushed to the mirror) unless a second Ctrl-C cuts the wait short.

        Not recursive: Ray's default (``recursive=True``) also cancels a task's child actor
        tasks, here its pushes to the mirror (Ray's documentation of ``ray.cancel``), so a push
        queued at the moment of Ctrl-C (a checkpoint, or the "interrupted" status) could be
        dropped and the run's record lose it: the likely cause of a Ctrl-C test that, twice
        under heavy load, found the run not recorded as interrupted."""
        for ref in running:
            self.ray.cancel(ref, recursive=False)
        deadline = time.monotonic() + CANCEL_WAIT_S
        pending = list(running)
        while pending and time.monotonic() < deadline:
            _, pending = self.ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
        self.show(self.ray.get(mirror.drain.remote()))


def _step(folder: RunFolder) -> int:
    record = read_status_record(folder.path)
    return 0 if record is None else record.step
