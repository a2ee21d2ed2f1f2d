"""``dml-bench tune --executor ray``: the study's workers are Ray tasks.

Each of ``--workers`` tasks runs :func:`dml_bench.tune.worker.run_worker` on the node Ray chose:
it takes trials from the study's storage until every method has its budget, exactly as a local
worker process does, so the budget, pruning and the retry of a dead worker's trial (Optuna's
heartbeats) work as they do locally. Every worker must reach the storage: the SQLite file under
the results directory only serves a cluster whose nodes all run on this machine; a cluster of
several machines needs ``--storage postgresql://...``.

Trial folders are written in a scratch folder on the worker's node and, after each trial, sent to
the driver's :class:`~dml_bench.execute.mirror.RunMirror`, which writes them under
``RESULTS_DIR/tuning/STUDY/`` with atomic writes. A worker whose process or node dies is run again
by Ray (its running trial is failed by its stale heartbeat and queued again, as locally).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from dml_bench.errors import UserError
from dml_bench.execute.cluster import CANCEL_WAIT_S, POLL_S, RETRIES, start_mirror
from dml_bench.execute.connect import ClusterError, check_cluster, connect, task_resources
from dml_bench.execute.mirror import record_files, signature
from dml_bench.execute.remote import (
    RemoteUserError,
    get_keeping_cores,
    logs_to_driver,
    node_name,
)
from dml_bench.execute.settings import ExecutorSettings
from dml_bench.store.read import TUNING_FOLDER
from dml_bench.tune.local import ProgressFactory, StudyProgress, TuneOutcome
from dml_bench.tune.plan import StudyPlan
from dml_bench.tune.record import export_study, now

logger = logging.getLogger(__name__)


def tune_on_cluster(
    plan: StudyPlan, settings: ExecutorSettings, workers: int, progress: ProgressFactory | None
) -> TuneOutcome:
    """Run the (prepared) study group to its budget with ``workers`` Ray tasks."""
    ray, address = connect(settings)
    try:
        check_cluster(ray, plan.base, settings)
        check_storage(ray, plan)
        started, clock = now(), time.perf_counter()
        bar = StudyProgress(plan, progress)
        try:
            _run_workers(ray, plan, settings, workers, bar)
        finally:
            final = bar.refresh()
            bar.close()
            wall = time.perf_counter() - clock
            session = {
                "started": started,
                "ended": now(),
                "workers": workers,
                "wall_s": wall,
                "executor": f"ray {address}",
            }
            record = export_study(plan, session)
        return TuneOutcome(final, record, wall)
    finally:
        ray.shutdown()


def check_storage(ray: ModuleType, plan: StudyPlan) -> None:
    """A SQLite study file is reachable only from this machine's nodes."""
    if not plan.storage.startswith("sqlite"):
        return
    here = ray.util.get_node_ip_address()
    elsewhere = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")} - {here})
    if elsewhere:
        raise ClusterError(
            f"The study is stored in a SQLite file on this machine ({plan.storage}), which the "
            f"cluster's nodes on {', '.join(elsewhere)} cannot open. Give every worker one "
            "database server: --storage postgresql://USER:PASSWORD@HOST/DB (pip install "
            "'dml-bench[postgres]')."
        )


def _run_workers(
    ray: ModuleType, plan: StudyPlan, settings: ExecutorSettings, workers: int, bar: StudyProgress
) -> None:
    mirror = start_mirror(ray, plan.results_dir.resolve())
    tree = f"{TUNING_FOLDER}/{plan.group}"
    ray.get(mirror.allow_tree.remote(tree))
    task = ray.remote(tune_on_node).options(
        **task_resources(plan.base[0], settings), max_retries=RETRIES, retry_exceptions=False
    )
    threads = max(1, int(settings.cpus_per_run))
    running = [task.remote(plan, index, mirror, threads) for index in range(workers)]
    try:
        while running:
            finished, running = ray.wait(running, num_returns=1, timeout=POLL_S * 2)
            _show(ray, mirror)
            bar.refresh()
            for ref in finished:
                result = ray.get(ref)  # a RayError (lost for good) keeps its traceback: a bug
                if isinstance(result, RemoteUserError):
                    raise UserError(f"Tuning worker {result.run_id}: {result.message}")
    except BaseException:
        for ref in running:
            ray.cancel(ref, recursive=False)  # keep the workers' pushes (see cluster.cancel)
        ray.wait(running, num_returns=len(running), timeout=CANCEL_WAIT_S)
        _show(ray, mirror)
        raise


def _show(ray: ModuleType, mirror: Any) -> None:
    for event in ray.get(mirror.drain.remote()):
        logger.log(event.level or logging.INFO, "[%s] %s", event.node, event.message)


def tune_on_node(plan: StudyPlan, index: int, mirror: Any, threads: int) -> RemoteUserError | None:
    """One worker of the study on this node; its trial folders go to the driver's mirror."""
    import torch

    from dml_bench.execute.mirror import Event
    from dml_bench.tune.worker import run_worker

    torch.set_num_threads(threads)
    node = node_name()
    scratch = Path(tempfile.mkdtemp(prefix="dml-bench-tune-"))
    tree = scratch / TUNING_FOLDER / plan.group
    sent: dict[str, tuple[int, int, int]] = {}

    def ship() -> None:
        files = record_files(tree) if tree.exists() else {}
        changed = [rel for rel, path in files.items() if sent.get(rel) != signature(path)]
        if changed:
            batch = [(rel, files[rel].read_bytes()) for rel in changed]
            get_keeping_cores(mirror.put_tree.remote(f"{TUNING_FOLDER}/{plan.group}", batch))
            sent.update({rel: signature(files[rel]) for rel in changed})

    name = f"worker {index}"
    message = f"tuning worker {index} on node {node} (pid {os.getpid()})"
    mirror.report.remote(Event(name, "log", node, os.getpid(), level=logging.INFO, message=message))
    try:
        with logs_to_driver(mirror, name, node):
            try:
                run_worker(dataclasses.replace(plan, results_dir=scratch), index, on_trial=ship)
            except UserError as exc:
                return RemoteUserError(name, str(exc))
            finally:
                ship()
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
