"""No credential lands in a record, a log line, an error paragraph or a report.

A password is planted in every setting that can hold one today, and every file that ``dml-bench
run`` and ``dml-bench report`` write, with everything they print, is searched for it:

* a method parameter holding a storage URL (``--set remote_log.storage=postgresql://...``): what a
  plugin, the tuning command's ``--storage`` and the workflow's MLflow URI record;
* the data root given as a URL (``--set data_root=s3://user:password@bucket/...``);
* environment variables that hold credentials for the services dml-bench may talk to (nothing may
  record the environment);
* an exception message that quotes the URL: the failed run's ``status.json`` reason, the error log
  line and its traceback (``-v``), and the run's line in the outcome table;
* a bad-input paragraph quoting a dataset path given as a URL.

The tuning study and the MLflow logging of the coming commands add their own settings to
:data:`PLANTED_ENV` / the commands below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dml_bench.methods import METHODS, MethodConfig, MethodSpec
from dml_bench.registry import Origin
from tests.cli.helpers import describe, invoke, run_args, run_folders, shared_data_root

PLANTED = "pl4nted-Passw0rd"
STORAGE = f"postgresql://optuna:{PLANTED}@db.lab:5432/studies"
DATA_ROOT = f"s3://reader:{PLANTED}@bucket/data"

PLANTED_ENV = {
    "DATABASE_URL": f"postgresql://u:{PLANTED}@db/x",
    "OPTUNA_STORAGE": STORAGE,
    "MLFLOW_TRACKING_URI": f"https://alice:{PLANTED}@mlflow.lab",
    "MLFLOW_TRACKING_PASSWORD": PLANTED,
    "RAY_ADDRESS": f"ray://head:10001?token={PLANTED}",
    "PGPASSWORD": PLANTED,
    "AWS_SECRET_ACCESS_KEY": PLANTED,
    "HF_TOKEN": PLANTED,
}


@dataclass(frozen=True)
class RemoteLogConfig(MethodConfig):
    """A plugin method that keeps a storage URL in its config, and can fail on reaching it."""

    storage: str = ""
    fail_after: int = 0  # > 0: raise a ConnectionError quoting the URL after this many steps


class RemoteLogLoss(nn.Module):
    def __init__(self, config: RemoteLogConfig) -> None:
        super().__init__()
        self.config, self.calls = config, 0

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices: Any = None) -> Any:
        self.calls += 1
        if self.config.fail_after and self.calls > self.config.fail_after:
            raise ConnectionError(f"could not connect to {self.config.storage}: timed out")
        return embeddings.pow(2).sum(dim=1).mean()


SPEC = MethodSpec(
    name="remote_log",
    description="a test method that records a storage URL",
    reference="tests",
    config_cls=RemoteLogConfig,
    build_loss=lambda classes, size, config: RemoteLogLoss(config),
    family="pair",
    needs_positives=False,
)


@pytest.fixture
def remote_log_method(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``remote_log`` registered for this test only (the registry's tables are restored after)."""
    METHODS.names()  # the built-ins and plugins first
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    monkeypatch.setattr(METHODS, "_origins", dict(METHODS._origins))
    METHODS.register("remote_log", SPEC, Origin("dml-bench-tests", "0"))
    yield


def _files_holding(root: Path, needle: str) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and (needle.encode() in p.read_bytes() or needle in p.name)
    )


def test_a_planted_password_lands_in_no_file_and_no_output(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    remote_log_method: None,
) -> None:
    for name, value in PLANTED_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # the data root "s3://..." is a relative folder here
    data_root = shared_data_root(tmp_path_factory)
    results = tmp_path / "results"
    args = run_args(
        results,
        "--set",
        f"remote_log.storage={STORAGE}",
        "--set",
        "remote_log.fail_after=0,4",  # one run completes, one fails after its step-3 checkpoint
        "--set",
        f"data_root={DATA_ROOT}",
        "-v",
        methods="remote_log",
    )
    run = invoke(args, data_root)
    assert run.exit_code == 1, describe(run)  # the failed run
    bad = invoke(
        ["run", "--dataset", f"csv:https://u:{PLANTED}@host/list.csv", "--results-dir", "x"],
        data_root,
    )
    assert bad.exit_code == 2, describe(bad)
    report = invoke(["report", "--results-dir", str(results)], data_root)
    assert report.exit_code == 0, describe(report)

    for result in (run, bad, report):
        assert PLANTED not in result.output, result.output
    assert _files_holding(results, PLANTED) == []

    # what was masked is still recorded, and every kind of file was searched
    folders = run_folders(results)
    statuses = {json.loads((f / "status.json").read_text())["status"]: f for f in folders}
    assert set(statuses) == {"completed", "failed"}
    config = json.loads((statuses["completed"] / "config.json").read_text())
    assert config["method_config"]["storage"] == "postgresql://optuna:***@db.lab:5432/studies"
    assert config["data_root"] == "s3://reader:***@bucket/data"
    failed = statuses["failed"]
    assert (failed / "checkpoint.pt").exists()
    reason = json.loads((failed / "status.json").read_text())["reason"]
    assert "could not connect to postgresql://optuna:***@db.lab:5432/studies" in reason
    assert "optuna:***@db.lab" in run.output and "Traceback" in run.output
    assert "https:/u:***@host/list.csv" in bad.output
    written = {p.name for p in results.rglob("*") if p.is_file()}
    assert {"config.json", "env.json", "status.json", "metrics.csv", "summary.json"} <= written
    assert {"checkpoint.pt", "report.md"} <= written
