"""Reading run records: completed runs become rows, everything else is skipped with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dml_bench.errors import UserError
from dml_bench.store.read import load_runs, read_retrievals


def _write_run(
    root: Path,
    name: str,
    *,
    status: str = "completed",
    config: dict[str, Any] | None = None,
    metrics: pd.DataFrame | None = None,
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    cfg = (
        config
        if config is not None
        else {
            "run_id": name,
            "method": "proxy_nca",
            "variant": "proxy_nca",
            "dataset": "hershey",
            "seed": 0,
            "sampler": "random",
            "method_config": {"m_per_class": None, "scale": 8.0, "extra": {"a": 1}},
        }
    )
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "status.json").write_text(
        json.dumps({"status": status, "reason": "killed", "step": 2, "updated": "now"})
    )
    frame = (
        metrics
        if metrics is not None
        else pd.DataFrame(
            {
                "step": [0, 10, 20],
                "elapsed_s": [0.0, 1.0, 2.0],
                "recall@1": [0.1, 0.3, 0.5],
                "nmi": [0.2, 0.4, 0.6],
                "train_loss": [None, 1.0, 0.5],
            }
        )
    )
    frame.to_csv(run / "metrics.csv", index=False)
    (run / "summary.json").write_text(
        json.dumps({"run_id": name, "train_seconds": 2.0, "best_step": 20})
    )
    return run


def test_completed_run_becomes_one_row_with_final_metrics_and_flat_config(tmp_path: Path) -> None:
    _write_run(tmp_path, "a")
    table = load_runs(tmp_path)
    assert len(table.runs) == 1 and table.skipped == []
    row = table.runs.iloc[0]
    assert row["recall@1"] == pytest.approx(0.5) and row["nmi"] == pytest.approx(0.6)
    assert row["cfg.scale"] == 8.0 and row["cfg.extra.a"] == 1
    assert row["family"] == "proxy" and row["sampler"] == "random" and row["steps"] == 20
    assert row["train_seconds"] == 2.0
    assert list(table.curves["step"]) == [0, 10, 20]
    assert set(table.curves["run_id"]) == {"a"}
    assert table.metric_columns == ["recall@1", "nmi"]


def test_family_and_sampler_are_inferred_when_not_recorded(tmp_path: Path) -> None:
    cfg = {
        "method": "triplet_semihard",
        "dataset": "hershey",
        "seed": 1,
        "method_config": {"m_per_class": 4},
    }
    _write_run(tmp_path, "t", config=cfg)
    cfg2 = {
        "method": "my_plugin",
        "dataset": "hershey",
        "seed": 1,
        "family": "proxy",
        "method_config": {"m_per_class": None},
    }
    _write_run(tmp_path, "p", config=cfg2)
    runs = load_runs(tmp_path).runs.set_index("run_id")
    assert runs.loc["t", "family"] == "pair" and runs.loc["t", "sampler"] == "m_per_class:4"
    assert runs.loc["t", "variant"] == "triplet_semihard"
    assert runs.loc["p", "family"] == "proxy" and runs.loc["p", "sampler"] == "random"


def test_unusable_runs_are_skipped_with_a_reason(tmp_path: Path) -> None:
    _write_run(tmp_path, "good")
    _write_run(tmp_path, "running", status="running")
    _write_run(tmp_path, "failed", status="failed")
    bad_json = _write_run(tmp_path, "bad_json")
    (bad_json / "config.json").write_text("{oops")
    no_metrics = _write_run(tmp_path, "no_metrics")
    (no_metrics / "metrics.csv").unlink()
    _write_run(tmp_path, "empty_metrics", metrics=pd.DataFrame({"step": [], "recall@1": []}))
    _write_run(
        tmp_path, "text_metrics", metrics=pd.DataFrame({"step": [0, 1], "recall@1": ["x", 0.2]})
    )
    _write_run(tmp_path, "no_seed", config={"method": "m", "dataset": "d"})
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "table.md").write_text("not a run")

    table = load_runs(tmp_path)
    assert list(table.runs["run_id"]) == ["good"]
    reasons = dict(table.skipped)
    assert set(reasons) == {
        "running",
        "failed",
        "bad_json",
        "no_metrics",
        "empty_metrics",
        "text_metrics",
        "no_seed",
    }
    assert reasons["running"].startswith("status running")
    assert "killed" in reasons["failed"]
    assert "config.json" in reasons["bad_json"]
    assert "metrics.csv" in reasons["no_metrics"]
    assert "no rows" in reasons["empty_metrics"]
    assert "recall@1" in reasons["text_metrics"]
    assert "seed" in reasons["no_seed"]


def test_all_skipped_gives_empty_tables_not_an_error(tmp_path: Path) -> None:
    _write_run(tmp_path, "r", status="interrupted")
    table = load_runs(tmp_path)
    assert table.runs.empty and table.curves.empty and len(table.skipped) == 1


@pytest.mark.parametrize("make_dir", [False, True])
def test_missing_or_empty_results_dir_is_a_user_error(tmp_path: Path, make_dir: bool) -> None:
    target = tmp_path / "results"
    if make_dir:
        target.mkdir()
        (target / "report").mkdir()  # the report folder alone is not a run
    with pytest.raises(UserError) as info:
        load_runs(target)
    assert str(target) in str(info.value) and "dml-bench run" in str(info.value)


def test_read_retrievals_returns_none_when_absent_or_broken(tmp_path: Path) -> None:
    run = _write_run(tmp_path, "a")
    assert read_retrievals(run) is None
    (run / "retrievals.npz").write_bytes(b"garbage")
    assert read_retrievals(run) is None


SCHEMA0 = Path(__file__).parent / "data" / "schema0"


def test_an_unversioned_record_is_read_from_its_files_alone() -> None:
    """A run folder written before records had a schema (as those behind docs/example-report):
    its setup is the schema-0 run options of its config.json, nothing from today's code."""
    table = load_runs(SCHEMA0)
    assert table.skipped == [] and len(table.runs) == 1
    row = table.runs.iloc[0]
    folder = SCHEMA0 / row["run_id"]
    config = json.loads((folder / "config.json").read_text())
    assert "schema" not in config
    assert row["schema"] == 0 and json.loads(row["swept"]) == {}
    assert (row["family"], row["sampler"], row["variant"]) == ("proxy", "random", "proxy_nca")
    setup = json.loads(row["setup"])
    assert setup["lr"] == config["lr"] and setup["steps"] == config["steps"] == row["steps"]
    assert setup["dataset.max_classes"] == config["dataset_config"]["max_classes"]
    assert "device" not in setup and "num_workers" not in setup and "variant" not in setup
    metrics = pd.read_csv(folder / "metrics.csv")
    assert row["recall@1"] == pytest.approx(metrics["recall@1"].iloc[-1])


def _versioned_config(name: str, **changes: Any) -> dict[str, Any]:
    from dml_bench.store.records import SCHEMA_VERSION, RunRecord

    record = RunRecord(
        run_id=name,
        method="plugin_proxies",
        variant="plugin_proxies[scale=3.0]",
        dataset="hershey",
        seed=2,
        family="proxy",
        sampler="m_per_class:4",
        method_config={"scale": 3.0, "m_per_class": 4},
        setup={"lr": 0.5, "dataset.max_classes": 3},
        swept={"scale": 3.0},
        config={"lr": 0.5, "steps": 20, "some_future_option": 1},
    )
    return {**record.to_json(), "schema": SCHEMA_VERSION, **changes}


def test_a_versioned_record_gives_its_recorded_setup_family_and_swept_values(
    tmp_path: Path,
) -> None:
    _write_run(tmp_path, "v1", config=_versioned_config("v1"))
    row = load_runs(tmp_path).runs.iloc[0]
    assert row["schema"] == 1 and row["family"] == "proxy" and row["sampler"] == "m_per_class:4"
    assert json.loads(row["swept"]) == {"scale": 3.0}
    assert json.loads(row["setup"]) == {"lr": 0.5, "dataset.max_classes": 3}  # as recorded
    assert row["cfg.scale"] == 3.0 and row["seed"] == 2


def test_a_record_newer_than_the_reader_is_skipped_naming_the_upgrade(tmp_path: Path) -> None:
    _write_run(tmp_path, "future", config=_versioned_config("future", schema=99))
    table = load_runs(tmp_path)
    assert table.runs.empty
    assert table.skipped[0][0] == "future" and "upgrade dml-bench" in table.skipped[0][1]
