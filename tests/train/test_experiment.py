"""Running a plan: skip what is done, record a failure and go on, leave no trace on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dml_bench.errors import ConfigError
from dml_bench.store.write import RunFolder
from dml_bench.train import experiment, plan_runs
from dml_bench.train.config import RunConfig
from dml_bench.train.data import RunData
from dml_bench.train.loop import RunResult
from tests.train.conftest import tiny_request


def fake_train_run(fail_method: str | None = None) -> Any:
    """A stand-in for the loop: records a completed run at once (or raises for one method)."""

    def train_run(
        config: RunConfig, data: RunData, folder: RunFolder, device: Any, progress: Any
    ) -> RunResult:
        if config.method == fail_method:
            folder.write_status("running", 2)
            raise RuntimeError("boom")
        folder.write_status("completed", config.steps)
        return RunResult(folder.run_id, "completed", [{"step": config.steps, "recall@1": 0.5}])

    return train_run


def test_completed_runs_are_skipped_the_second_time(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(experiment, "train_run", fake_train_run())
    configs = plan_runs(tiny_request(data_root, ("proxy_nca", "nca")))
    first = experiment.run_experiment(configs, tmp_path)
    assert [o.status for o in first] == ["completed", "completed"]
    assert first[0].final == {"step": 6, "recall@1": 0.5}
    for config in configs:  # the records a report needs were written when the run started
        record = json.loads((tmp_path / config.run_id() / "config.json").read_text())
        assert record["run_id"] == config.run_id() and record["schema"] >= 1
        assert (tmp_path / config.run_id() / "env.json").is_file()
    second = experiment.run_experiment(configs, tmp_path)
    assert [o.status for o in second] == ["skipped", "skipped"]
    assert "already completed" in (second[0].reason or "")


def test_a_failing_run_is_recorded_failed_and_the_others_go_on(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(experiment, "train_run", fake_train_run(fail_method="proxy_nca"))
    configs = plan_runs(tiny_request(data_root, ("proxy_nca", "nca")))
    outcomes = experiment.run_experiment(configs, tmp_path)
    assert [o.status for o in outcomes] == ["failed", "completed"]
    assert outcomes[0].reason == "RuntimeError: boom"
    status = json.loads((tmp_path / configs[0].run_id() / "status.json").read_text())
    assert (status["status"], status["step"], status["reason"]) == (
        "failed",
        2,
        "RuntimeError: boom",
    )


def test_bad_input_found_by_preflight_leaves_the_results_directory_untouched(
    tmp_path: Path, data_root: Path
) -> None:
    """A batch the train split cannot fill is found before any run folder is claimed."""
    configs = plan_runs(tiny_request(data_root, ("nca",), batch_size=200))
    with pytest.raises(ConfigError, match="fewer than one batch|needs"):
        experiment.run_experiment(configs, tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []


def test_a_claimed_folder_without_records_is_forgotten_one_with_records_kept(
    tmp_path: Path,
) -> None:
    empty, used = tmp_path / "empty", tmp_path / "used"
    empty.mkdir()
    (empty / "lock").touch()
    used.mkdir()
    (used / "config.json").write_text("{}")
    assert experiment.forget_if_empty(empty) is True and not empty.exists()
    assert experiment.forget_if_empty(used) is False and used.exists()


def test_last_step_reads_the_status_or_says_zero(tmp_path: Path) -> None:
    assert experiment._last_step(tmp_path) == 0
    RunFolder(tmp_path, resumed=False).write_status("interrupted", 42, "x")
    assert experiment._last_step(tmp_path) == 42
    (tmp_path / "status.json").write_text("{not json")
    assert experiment._last_step(tmp_path) == 0
