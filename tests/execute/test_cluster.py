"""``dml-bench run --executor ray`` on a real two-node cluster (tests/execute/ray_cluster.py).

The driver is the real console script in a subprocess, as a user starts it; the references are
the same commands with ``--executor local``, in this process (tests/cli/helpers.py). On CPU every
metric of every evaluation must equal the local run's exactly.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import (
    DML_BENCH,
    assert_same_results,
    describe,
    file_hashes,
    invoke,
    read_status,
    run_args,
    run_folders,
    shared_data_root,
)
from tests.execute.ray_cluster import LocalCluster, local_cluster, node_env

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.xdist_group("ray_cluster")]

FOUR_RUNS = "proxy_nca,nca"  # x seeds 0,1
#: One run long enough to be killed between its first checkpoint and its end, with room for a
#: Ctrl-C to reach it: tiny steps take ~4 ms, so at 240 steps the whole run (~0.9 s) is about as
#: long as a cancel may take to arrive; at 1200 at least 600 steps (~2.3 s idle) remain after the
#: first checkpoint the tests wait for.
LONG_RUN = ("--steps", "1200", "--checkpoint-every", "10", "--eval-every", "400")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


def _terminal_sigint() -> None:
    """In the driver before it starts: SIGINT as at a terminal (delivered, default action, so
    Python raises KeyboardInterrupt). A child inherits an ignored SIGINT (a test session started
    in the background of a non-interactive shell) and a blocked one (the signal mask of the
    thread that forks it): either way the driver would never see the test's Ctrl-C and would run
    to the end, as a full-suite run here did twice (exit 0, the run "completed"), while the test
    alone passed."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_state(pid: int) -> str:
    """The driver's blocked and ignored signal sets (/proc), for a failure message."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "no /proc status"
    return " ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def start_driver(args: list[str], data_root: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**node_env(), "DML_BENCH_DATA_ROOT": str(data_root), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(DML_BENCH), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_terminal_sigint,  # noqa: PLW1509 - one call, before exec
        )


def finish(process: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> str:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return log.read_text()


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The uninterrupted local run of :data:`LONG_RUN`, its folder."""
    results = local_reference(run_args(tmp_path_factory.mktemp("local"), *LONG_RUN), data_root)
    (run,) = run_folders(results)
    return run


def local_reference(args: list[str], data_root: Path) -> Path:
    results = Path(args[args.index("--results-dir") + 1])
    result = invoke(args, data_root)
    assert result.exit_code == 0, describe(result)
    return results


def test_runs_spread_over_both_nodes_and_equal_local_runs(
    cluster: LocalCluster, data_root: Path, tmp_path: Path
) -> None:
    ray_results, local_results = tmp_path / "ray", tmp_path / "local"
    extra = ("--seeds", "0,1", "--executor", "ray", "--address", cluster.address)
    process = start_driver(
        run_args(ray_results, *extra, methods=FOUR_RUNS), data_root, tmp_path / "log"
    )
    local_reference(run_args(local_results, "--seeds", "0,1", methods=FOUR_RUNS), data_root)
    output = finish(process, tmp_path / "log")
    assert process.returncode == 0, output
    nodes = set(re.findall(r": on node (\S+) \(pid", output))
    assert len(nodes) == 2, f"the runs did not spread over both nodes:\n{output}"
    runs = [p.name for p in run_folders(ray_results)]
    assert runs == [p.name for p in run_folders(local_results)] and len(runs) == 4
    for name in runs:
        assert read_status(ray_results / name)["status"] == "completed"
        assert_same_results(ray_results / name, local_results / name)
        got, want = file_hashes(ray_results / name), file_hashes(local_results / name)
        assert set(got) == set(want)  # the same records, no checkpoint left behind
        assert_same_model(ray_results / name, local_results / name)


def assert_same_model(run: Path, reference: Path) -> None:
    """The kept weights and test embeddings, exactly (the files' bytes may differ: safetensors
    writes its metadata in an order that varies from process to process)."""
    import numpy as np
    from safetensors import safe_open

    with (
        safe_open(run / "model_final.safetensors", "pt") as got,
        safe_open(reference / "model_final.safetensors", "pt") as want,
    ):
        assert got.metadata() == want.metadata() and set(got.keys()) == set(want.keys())
        for key in want.keys():
            assert got.get_tensor(key).equal(want.get_tensor(key)), key
    with (
        np.load(run / "embeddings_test.npz") as got,
        np.load(reference / "embeddings_test.npz") as want,
    ):
        assert set(got.files) == set(want.files)
        for key in want.files:
            np.testing.assert_array_equal(got[key], want[key])


def _checkpointed(run: Path, steps: int) -> bool:
    """The driver holds a checkpoint of the run (status.json is pushed right after it)."""
    if not (run / "status.json").exists():
        return False
    status = read_status(run)
    return status["status"] == "running" and 10 <= status["step"] < steps // 2


def wait_for_checkpoint(process: subprocess.Popen[bytes], results: Path, log: Path) -> int | None:
    """Wait until the driver holds the run's first checkpoint; the pid of the worker process
    training it (from the driver's "on node" line), or None if the command ended first."""
    steps = int(LONG_RUN[1])
    deadline = time.monotonic() + 180
    while process.poll() is None and time.monotonic() < deadline:
        pids = re.findall(r": on node \S+ \(pid (\d+)\)", log.read_text())
        runs = run_folders(results) if results.exists() else []
        if pids and runs and _checkpointed(runs[0], steps):
            return int(pids[0])
        time.sleep(0.005)
    return None


def test_a_killed_worker_resumes_its_run_from_the_checkpoint_on_the_driver(
    cluster: LocalCluster, data_root: Path, tmp_path: Path, long_reference: Path
) -> None:
    """SIGKILL the worker process training the run, after its first checkpoint reached the
    driver: Ray runs the task again, the new attempt resumes from that checkpoint (not step 0),
    and the run ends exactly as an uninterrupted one."""
    results, log = tmp_path / "ray", tmp_path / "log"
    extra = (*LONG_RUN, "--executor", "ray", "--address", cluster.address)
    process = start_driver(run_args(results, *extra), data_root, log)
    killed = wait_for_checkpoint(process, results, log)
    if killed is not None:
        os.kill(killed, signal.SIGKILL)
    output = finish(process, log)
    assert killed is not None, f"the run ended before it could be killed:\n{output}"
    assert process.returncode == 0, output
    (run,) = run_folders(results)
    assert read_status(run)["status"] == "completed"
    assert re.search(rf"{run.name}: on node \S+ \(pid \d+, attempt 2\)", output), output
    resumed = re.findall(rf"{run.name}: resuming at step (\d+)", output)
    assert resumed and int(resumed[0]) >= 10, output
    assert_same_results(run, long_reference)
    assert not (run / "checkpoint.pt").exists()


@pytest.fixture
def doomed_cluster(needs_ray: None) -> Iterator[LocalCluster]:
    """A head and a worker node of the test's own: it kills the worker node."""
    with local_cluster((1, 1)) as started:
        yield started


class _Hold:
    def ready(self) -> bool:
        return True


@contextlib.contextmanager
def head_busy(cluster: LocalCluster) -> Iterator[str]:
    """An actor holds the head's CPU, so Ray places the next run on the worker node; the head's
    node id. The head is free again when the block ends."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        (head,) = [n["NodeID"] for n in ray.nodes() if "node:__internal_head__" in n["Resources"]]
        hold = ray.remote(_Hold).options(
            num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)
        )
        holder: Any = hold.remote()
        assert ray.get(holder.ready.remote(), timeout=120)
        yield head
        ray.kill(holder)
    finally:
        ray.shutdown()


def test_a_dead_node_s_run_resumes_from_the_driver_s_checkpoint_on_the_surviving_node(
    doomed_cluster: LocalCluster, data_root: Path, tmp_path: Path, long_reference: Path
) -> None:
    """SIGKILL every process of the worker node (raylet, agents, the run's worker) while the run
    trains there, after its first checkpoint reached the driver: Ray runs the task again on the
    head, which resumes from the driver's latest checkpoint (not an older one, not step 0); the
    rows recorded before the kill stay as they were, and the run ends exactly as an
    uninterrupted one.

    No Ray setting is needed: the driver, which owns the task, sees its call to the killed worker
    fail and retries the task at once (``max_retries``), before the head's health checks declare
    the node dead (5 failed checks 3 s apart, Ray's defaults). Measured: the second attempt starts
    about 5 s after the kill, mostly the new worker process importing torch."""
    results, log = tmp_path / "ray", tmp_path / "log"
    extra = (*LONG_RUN, "--executor", "ray", "--address", doomed_cluster.address)
    with head_busy(doomed_cluster) as head:
        process = start_driver(run_args(results, *extra), data_root, log)
        trained = wait_for_checkpoint(process, results, log)
        if trained is not None:
            killed = doomed_cluster.kill_node(1)
            held = read_status(run_folders(results)[0])["step"]
            rows = all_rows(run_folders(results)[0])
    output = finish(process, log)
    assert trained is not None, f"the run ended before its node could be killed:\n{output}"
    assert trained in killed
    assert process.returncode == 0, output
    (run,) = run_folders(results)
    starts = re.findall(rf"{run.name}: on node \S+/(\w+) \(pid \d+(?:, attempt (\d+))?\)", output)
    assert len(starts) == 2, output
    (first, _), (second, attempt) = starts
    assert first != head[:8] and (second, attempt) == (head[:8], "2"), output
    resumed = re.findall(rf"{run.name}: resuming at step (\d+)", output)
    assert resumed and int(resumed[0]) >= held >= 10, (held, output)
    assert read_status(run)["status"] == "completed"
    assert rows and all_rows(run)[: len(rows)] == rows
    assert_same_results(run, long_reference)
    assert not (run / "checkpoint.pt").exists()


def all_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv as it is, timing columns included."""
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_ctrl_c_cancels_the_runs_and_the_same_command_resumes_them(
    cluster: LocalCluster, data_root: Path, tmp_path: Path, long_reference: Path
) -> None:
    """Ctrl-C of the driver: exit 130, the run checkpointed and recorded as interrupted in the
    driver's folder; the same command again resumes it to the uninterrupted result."""
    results, log = tmp_path / "ray", tmp_path / "log"
    args = run_args(results, *LONG_RUN, "--executor", "ray", "--address", cluster.address)
    process = start_driver(args, data_root, log)
    assert wait_for_checkpoint(process, results, log) is not None, log.read_text()
    signals = _signal_state(process.pid)
    process.send_signal(signal.SIGINT)
    output = finish(process, log)
    assert process.returncode == 130, f"{signals}\n{output}"
    assert "Run the same command again to resume" in output
    (run,) = run_folders(results)
    status = read_status(run)
    assert status["status"] == "interrupted" and status["step"] >= 10, (status, output)
    assert (run / "checkpoint.pt").exists()
    process = start_driver(args, data_root, tmp_path / "log2")
    output = finish(process, tmp_path / "log2")
    assert process.returncode == 0, output
    assert re.search(rf"{run.name}: resuming at step {status['step']}", output), output
    assert read_status(run)["status"] == "completed"
    assert_same_results(run, long_reference)


def test_a_gpu_request_on_a_cluster_without_gpus(
    cluster: LocalCluster, data_root: Path, tmp_path: Path
) -> None:
    results = local_reference(run_args(tmp_path / "results"), data_root)
    before = file_hashes(results)
    args = run_args(results, "--device", "cuda", "--executor", "ray", "--address", cluster.address)
    process = start_driver(args, data_root, tmp_path / "log")
    output = finish(process, tmp_path / "log", timeout=120)
    assert process.returncode == 2, output
    assert "Traceback" not in output
    message = " ".join(output[output.index("Error:") :].split())
    assert "--device cuda asks the Ray cluster for one GPU per run, but it has none" in message
    assert "--device cpu" in message
    assert file_hashes(results) == before


def test_tune_workers_are_ray_tasks_and_trial_records_come_back(
    cluster: LocalCluster, data_root: Path, tmp_path: Path
) -> None:
    """Two tuning workers, one per node, share the study's budget exactly; every finished
    trial's folder reaches the driver's results directory and holds its objective."""
    from tests.cli.test_tune import finished, trials_of, tune_args

    results, log = tmp_path / "results", tmp_path / "log"
    extra = ("--study", "s", "--workers", "2", "--executor", "ray", "--address", cluster.address)
    process = start_driver(tune_args(results, *extra, trials=4), data_root, log)
    output = finish(process, log)
    assert process.returncode == 0, output
    assert len(set(re.findall(r"tuning worker \d on node (\S+)", output))) == 2, output
    record = json.loads((results / "tuning" / "s" / "study.json").read_text())
    assert record["sessions"][-1]["executor"].startswith("ray ")
    trials = trials_of(results, "s", "proxy_nca")
    assert len(finished(trials)) == 4 and not [t for t in trials if t.state.name == "RUNNING"]
    for t in finished(trials):
        metrics = results / "tuning" / "s" / "proxy_nca" / f"trial-{t.number:04d}" / "fold-0"
        rows = (metrics / "metrics.csv").read_text().strip().splitlines()
        if t.state.name == "COMPLETE":
            header = rows[0].split(",")
            assert float(rows[-1].split(",")[header.index("map@r")]) == pytest.approx(t.value)
