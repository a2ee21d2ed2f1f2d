"""Helpers for end-to-end tests of ``dml-bench run``: tiny commands, in-process and subprocess runs,
and comparisons of run records.

Three ways to run a command, on purpose:

* :func:`invoke` runs it inside the test process with click's ``CliRunner``: no interpreter start
  and no torch import (several seconds of CPU each on a 2-core machine), so most tests use it.
* :func:`start` runs the real ``dml-bench`` console script as a subprocess: a fresh interpreter,
  exactly what a user starts.
* :func:`launch` runs the same CLI entry point in a separate process forked from a warm
  ``multiprocessing`` fork server that has imported dml-bench and torch once (and nothing else:
  it is a fresh interpreter, not a fork of pytest). For what only a separate process can show
  (``kill -9``, Ctrl-C, two writers at once) at a fraction of the cost of :func:`start`.

Every command uses :data:`TINY_ARGS`: a Hershey subset that renders in milliseconds and trains in
about a second. The rendered images are cached under one data root per test session
(:func:`shared_data_root`), keyed by the dataset config, so the cache is rendered once.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dml_bench.cli.main import cli

#: A run of about a second: 24 classes (12 train, 12 test) x 4 images of 16 px, batch 16.
#: Checkpoints every 3 steps and evaluations every 6 give the kill tests moments to aim at.
TINY_ARGS: tuple[str, ...] = (
    "--steps",
    "12",
    "--eval-every",
    "6",
    "--checkpoint-every",
    "3",
    "--batch-size",
    "16",
    "--embedding-size",
    "8",
    "--set",
    "dataset.max_classes=24",
    "--set",
    "dataset.images_per_class=4",
    "--set",
    "dataset.image_size=16",
    "--set",
    "diagnostic_classes=4",
    "--set",
    "diagnostic_triplets=50",
    "--no-progress",
)

#: metrics.csv columns that measure time, not the embedding: they differ between identical runs.
TIMING_COLUMNS = frozenset({"elapsed_s", "cpu_s", "load1", "eval_s"})

DML_BENCH = Path(sys.executable).parent / "dml-bench"


def shared_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root per test session (the Hershey cache of the tiny config lives there)."""
    root = tmp_path_factory.getbasetemp() / "dml-bench-data"
    root.mkdir(exist_ok=True)
    return root


def run_args(results: Path, *extra: str, methods: str = "proxy_nca") -> list[str]:
    """``run`` with the tiny config into ``results``; ``extra`` flags come last (they win)."""
    return ["run", "--methods", methods, *TINY_ARGS, "--results-dir", str(results), *extra]


def invoke(args: Sequence[str], data_root: Path) -> Result:
    """Run a dml-bench command in this process, as a user would type it."""
    return CliRunner().invoke(
        cli, list(args), env={"DML_BENCH_DATA_ROOT": str(data_root)}, catch_exceptions=True
    )


def start(args: Sequence[str], data_root: Path) -> CliProcess:
    """Start ``dml-bench ARGS`` as a real console-script subprocess."""
    env = {**os.environ, "DML_BENCH_DATA_ROOT": str(data_root), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(DML_BENCH), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return CliProcess(popen=process)


#: What the fork server imports once, so that each launched process starts warm.
FORKSERVER_PRELOAD = [
    "dml_bench.cli.main",
    "dml_bench.cli.run_options",
    "dml_bench.train",
    "dml_bench.eval",
    "dml_bench.methods.proxy_nca",
    "dml_bench.models.trunks",
    "pytorch_metric_learning.losses",
    "pytorch_metric_learning.miners",
    "torchvision.models",
]


@functools.cache
def _fork_server() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    return context


def _run_cli_in_child(args: list[str], data_root: str, log: str) -> None:
    """The body of a launched process: the CLI entry point, output to ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["DML_BENCH_DATA_ROOT"] = data_root
    cli.main(args=args, prog_name="dml-bench")  # exits with the command's exit code


def launch(args: Sequence[str], data_root: Path, log: Path) -> CliProcess:
    """Run ``dml-bench ARGS`` in a separate process from the warm fork server."""
    process = _fork_server().Process(
        target=_run_cli_in_child, args=(list(args), str(data_root), str(log)), daemon=True
    )
    process.start()
    return CliProcess(mp=process, log=log)


@dataclass
class CliProcess:
    """A running dml-bench command, from :func:`start` (``popen``) or :func:`launch` (``mp``).

    Exit codes follow ``subprocess``: the command's code, or ``-signum`` when a signal killed it.
    """

    popen: subprocess.Popen[str] | None = None
    mp: Any = None
    log: Path | None = None

    @property
    def pid(self) -> int:
        return int(self.popen.pid if self.popen is not None else self.mp.pid)

    def poll(self) -> int | None:
        if self.popen is not None:
            return self.popen.poll()
        return None if self.mp.is_alive() else self.mp.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for the end; the exit code and the output (stdout and stderr together)."""
        if self.popen is not None:
            out, _ = self.popen.communicate(timeout=timeout)
            return self.popen.returncode, out
        self.mp.join(timeout)
        if self.mp.is_alive():
            self.mp.kill()
            self.mp.join()
        assert self.log is not None
        return int(self.mp.exitcode), self.log.read_text() if self.log.exists() else ""


def describe(result: Result) -> str:
    """What a failed assertion on a CliRunner result should show."""
    return f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


@dataclass(frozen=True)
class SignalPlan:
    """Run ``dml-bench ARGS``; send ``signum`` the first time ``condition()`` holds.
    ``console_script``: start the real console script instead of launching from the fork server."""

    args: Sequence[str]
    condition: Callable[[], bool]
    signum: int
    console_script: bool = False


@dataclass(frozen=True)
class Signalled:
    exit_code: int
    output: str
    signalled: bool  # False: the process ended before the condition held


def start_and_signal_all(
    plans: Mapping[str, SignalPlan], data_root: Path, logs: Path, timeout: float = 180
) -> dict[str, Signalled]:
    """Run several commands at once, each signalled at its own moment (polled every 2 ms)."""
    logs.mkdir(parents=True, exist_ok=True)
    processes = {
        name: start(plan.args, data_root)
        if plan.console_script
        else launch(plan.args, data_root, logs / f"{name}.log")
        for name, plan in plans.items()
    }
    pending = set(processes)
    sent: set[str] = set()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            if processes[name].poll() is not None:
                pending.discard(name)
            elif plans[name].condition():
                processes[name].send_signal(plans[name].signum)
                sent.add(name)
                pending.discard(name)
        time.sleep(0.002)
    for name in pending:
        processes[name].send_signal(signal.SIGKILL)
    out = {}
    for name, process in processes.items():
        code, output = process.finish(timeout=max(10.0, deadline - time.monotonic()))
        out[name] = Signalled(code, output, name in sent)
    return out


def run_all(
    commands: Mapping[str, Sequence[str]], data_root: Path, logs: Path
) -> dict[str, Signalled]:
    """Run several commands at once to their end (nothing is signalled)."""
    return start_and_signal_all(
        {name: SignalPlan(args, lambda: False, signal.SIGKILL) for name, args in commands.items()},
        data_root,
        logs,
    )


def only_run(results: Path) -> Path:
    """The single run folder in ``results`` (the report folder and stray files excluded)."""
    runs = run_folders(results)
    assert len(runs) == 1, f"expected one run folder in {results}, found {[p.name for p in runs]}"
    return runs[0]


def run_folders(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir() and p.name != "report")


def read_status(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "status.json").read_text()))


def status_of(run: Path) -> str | None:
    """The status in ``run/status.json``, or ``None`` while there is none (or it is mid-write,
    which atomic writes should make impossible: a parse error here is a real failure)."""
    path = run / "status.json"
    if not path.exists():
        return None
    return str(json.loads(path.read_text())["status"])


def metric_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv as text rows without the timing columns: what must match bit for bit."""
    with (run / "metrics.csv").open(newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)
        ]


def final_metrics(run: Path) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    return {"final": summary["final"], "best": summary["best"], "best_step": summary["best_step"]}


def assert_same_results(run: Path, reference: Path, ignore: frozenset[str] = frozenset()) -> None:
    """Every metric of every evaluation, and the summary's final and best metrics, exactly equal
    (columns in ``ignore`` left out: only for a known, separately pinned bug)."""
    got, want = metric_rows(run), metric_rows(reference)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for row, ref in zip(got, want, strict=True):
        differing = {
            k: (row.get(k), ref[k]) for k in ref if k not in ignore and row.get(k) != ref[k]
        }
        assert not differing, f"step {ref['step']}: (got, reference) {differing}"
    assert set(got[0]) == set(want[0])
    for part in ("final", "best"):
        got_part, want_part = final_metrics(run)[part], final_metrics(reference)[part]
        assert {k: v for k, v in got_part.items() if k not in ignore} == {
            k: v for k, v in want_part.items() if k not in ignore
        }
    assert final_metrics(run)["best_step"] == final_metrics(reference)["best_step"]


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (``lock`` files included: they must
    not be recreated either)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def command_line(args: Sequence[str]) -> str:
    return "dml-bench " + shlex.join(args)
