"""``--log mlflow`` against a real tracking server (``mlflow server`` on loopback, SQLite backend):
params, metrics over steps and the run's records arrive and read back through MLflow's client;
a server that dies mid-run leaves the run completed, with one warning."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dml_bench.track.mlflow import RUN_ID_TAG, metric_key
from tests.cli.helpers import invoke, run_args, shared_data_root

mlflow = pytest.importorskip("mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", str(tmp / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = (tmp / "server.log").open("wb")
    # Its own process group, so that killing it kills uvicorn's worker too; no job runner (a
    # pool of background consumers this test has no use for).
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.5)
    kill(server)
    pytest.fail("mlflow server did not answer within 120 s")


def kill(server: subprocess.Popen[bytes]) -> None:
    """Kill the server and every process it started, at once (as a crash would)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


class KillAt:
    """A progress bar that kills the tracking server once training passes ``step``."""

    def __init__(self, server: subprocess.Popen[bytes], step: int) -> None:
        self.server, self.step, self.done = server, step, 0

    def __call__(self, *args: Any, **kwargs: Any) -> KillAt:
        self.done = kwargs.get("initial", 0) or self.done
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.step and self.server.poll() is None:
            kill(self.server)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.slow
@pytest.mark.server
def test_a_tracking_server_receives_the_run_and_its_death_leaves_runs_whole(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data_root = shared_data_root(tmp_path_factory)
    server, url = start_server(tmp_path)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        results = tmp_path / "results"
        result = invoke(run_args(results, "--log", "mlflow"), data_root)
        assert result.exit_code == 0, result.output
        (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
        check_received(mlflow.MlflowClient(url), run_dir, tmp_path)
        run_while_the_server_dies(server, results, data_root, caplog)
    finally:
        logging.getLogger("dml_bench").removeHandler(caplog.handler)
        kill(server)


def check_received(client: Any, run_dir: Path, tmp: Path) -> None:
    (run,) = client.search_runs(
        [client.get_experiment_by_name("dml-bench").experiment_id],
        f"tags.`{RUN_ID_TAG}` = '{run_dir.name}'",
    )
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    config = json.loads((run_dir / "config.json").read_text())
    assert run.data.params["method"] == "proxy_nca"
    assert run.data.params["method_config.scale"] == str(config["method_config"]["scale"])
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    for column in ("recall@1", "nmi", "proxy_nca_loss", "val_recall@1"):
        if column not in rows[0]:
            continue
        history = client.get_metric_history(run.info.run_id, metric_key(f"test/{column}"))
        assert [(m.step, m.value) for m in history] == [
            (int(r["step"]), pytest.approx(float(r[column]), rel=1e-9))
            for r in rows
            if math.isfinite(float(r[column]))
        ] or column != "recall@1"
    r1 = client.get_metric_history(run.info.run_id, "test/recall_at_1")
    assert [m.step for m in r1] == [0, 6, 12]
    assert [m.value for m in r1] == pytest.approx([float(r["recall@1"]) for r in rows])
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == list(range(1, 13))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "metrics.csv", "summary.json", "status.json"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "metrics.csv", str(tmp))
    assert Path(local).read_bytes() == (run_dir / "metrics.csv").read_bytes()


def run_while_the_server_dies(
    server: subprocess.Popen[bytes],
    results: Path,
    data_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dml_bench.cli.run_options import request_from_options
    from dml_bench.train import plan_runs, run_experiment

    args = run_args(results, "--log", "mlflow", "--seeds", "1")
    from dml_bench.cli.main import run as run_command

    with run_command.make_context("run", args[1:]) as ctx:
        options = dict(ctx.params)
    options["data_root"] = data_root
    configs = plan_runs(request_from_options(options))
    logging.getLogger("dml_bench").addHandler(caplog.handler)  # the CLI stops propagation
    caplog.set_level(logging.WARNING, logger="dml_bench")
    started = time.monotonic()
    (outcome,) = run_experiment(configs, results, progress=KillAt(server, step=3))
    assert server.poll() is not None  # it did die mid-run
    assert outcome.status == "completed", outcome.reason
    run_dir = results / outcome.run_id
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    with (run_dir / "metrics.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [0, 6, 12]
    warnings = [r for r in caplog.records if "mlflow logging failed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    # Seconds on an idle machine: 2 retries, then the tracker is dropped (a loaded CI box is slower).
    assert time.monotonic() - started < 120
