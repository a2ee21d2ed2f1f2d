"""The body of one run's Ray task, on whichever node Ray chose.

:func:`train_on_node` fetches the run folder from the driver (:meth:`RunMirror.snapshot`: empty
for a new run, the last checkpoint and records for one to resume), unpacks it into a scratch folder
on this node and trains it with the same function as ``--executor local``
(:func:`dml_bench.train.experiment.train_claimed`), the folder pushing its records back as it goes
(:class:`~dml_bench.execute.mirror.MirroredFolder`). Log lines of the run go to the driver too.
A picklable module-level function of picklable arguments: Ray ships it to the node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dml_bench.errors import UserError
from dml_bench.execute.mirror import Event, MirroredFolder, unpack
from dml_bench.store.records import CONFIG_FILE
from dml_bench.train.config import RunConfig
from dml_bench.train.experiment import RunOutcome, train_claimed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteUserError:
    """Bad input met on the node (e.g. the dataset is missing there): the driver stops the
    command with this paragraph and exit code 2, as ``--executor local`` would."""

    run_id: str
    message: str


def node_name() -> str:
    """The node as the driver shows it: its IP and the start of Ray's node id (several nodes
    can share an IP, e.g. a test cluster on one machine)."""
    import ray

    context = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"


def get_keeping_cores(ref: Any) -> Any:
    """``ray.get(ref)`` in a task without lending the task's CPUs to another task meanwhile.

    Ray releases the CPUs of a task blocked in ``ray.get`` or ``ray.wait`` on its main thread
    (so that nested tasks cannot deadlock) and starts a queued task on them; when the call returns
    both tasks run, each with the threads of the cores it asked for. A run blocks at its start
    (:meth:`RunMirror.snapshot`) and at each push, so on a node with ``--cpus-per-run`` cores two
    runs trained at once, their torch threads spinning at every barrier while the other run's
    held the cores: each step took about 5 times the CPU and 9 times the wall-clock time.
    Waiting on another thread keeps the CPUs (Ray releases them only for its main thread)."""
    import ray

    with ThreadPoolExecutor(1, thread_name_prefix="dml-bench-get") as pool:
        return pool.submit(ray.get, ref).result()


class _ToDriver(logging.Handler):
    """Sends the run's log records to the driver (fire and forget; in order per run)."""

    def __init__(self, mirror: Any, run_id: str, node: str) -> None:
        super().__init__(logging.INFO)
        self.mirror, self.run_id, self.node = mirror, run_id, node

    def emit(self, record: logging.LogRecord) -> None:
        event = Event(
            self.run_id,
            "log",
            self.node,
            os.getpid(),
            level=record.levelno,
            message=record.getMessage(),
        )
        self.mirror.report.remote(event)


@contextlib.contextmanager
def logs_to_driver(mirror: Any, run_id: str, node: str) -> Iterator[None]:
    root = logging.getLogger("dml_bench")
    handler, level = _ToDriver(mirror, run_id, node), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def train_on_node(
    config: RunConfig, run_id: str, mirror: Any, threads: int
) -> RunOutcome | RemoteUserError:
    """Train (or resume) the run ``run_id``, whose folder the driver holds, on this node, with
    ``threads`` torch threads (the cores it reserved: on CPU the result depends on the number of
    threads, so it is the same on every node and in every attempt)."""
    import torch

    torch.set_num_threads(threads)
    node = node_name()
    scratch = Path(tempfile.mkdtemp(prefix="dml-bench-run-"))
    try:
        attempt, files = get_keeping_cores(mirror.snapshot.remote(run_id))
        path = scratch / run_id
        unpack(path, files)

        def push(*args: Any) -> bool:
            return bool(get_keeping_cores(mirror.put.remote(*args)))

        folder = MirroredFolder(
            path, resumed=(path / CONFIG_FILE).exists(), push=push, attempt=attempt
        )
        folder.mark_synced()
        mirror.report.remote(Event(run_id, "start", node, os.getpid(), attempt=attempt))
        with logs_to_driver(mirror, run_id, node):
            try:
                outcome = train_claimed(config, folder, {}, None)
            except UserError as exc:
                folder.sync()
                return RemoteUserError(run_id, str(exc))
            folder.sync()  # what the run did after its last status: e.g. the checkpoint deleted
        return outcome
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
