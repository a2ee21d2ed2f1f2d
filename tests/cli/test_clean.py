"""``dml-bench clean`` removes folders of runs that never trained a step, after a dry run, and
the report counts such folders in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dml_bench.store.write import _try_lock
from tests.cli.helpers import invoke, run_args, shared_data_root


def fake_run(results: Path, name: str, status: str | None, step: int, *extra: str) -> Path:
    path = results / name
    path.mkdir(parents=True)
    (path / "lock").touch()
    (path / "config.json").write_text(
        json.dumps({"method": "proxy_nca", "dataset": "x", "seed": 0})
    )
    if status is not None:
        record = {"status": status, "step": step, "reason": "stopped: Cannot read the image a.png"}
        (path / "status.json").write_text(json.dumps(record))
    for name in extra:
        (path / name).write_bytes(b"x")
    return path


@pytest.mark.slow
def test_clean_lists_then_removes_only_untrained_folders(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_root = shared_data_root(tmp_path_factory)
    results = tmp_path / "results"
    assert invoke(run_args(results), data_root).exit_code == 0
    (completed,) = list(results.iterdir())
    untrained = [
        fake_run(results, "a-interrupted", "interrupted", 0),
        fake_run(results, "b-failed", "failed", 0),
        fake_run(results, "c-no-status", None, 0),
    ]
    kept = [
        fake_run(results, "d-resumable", "interrupted", 6, "checkpoint.pt", "metrics.csv"),
        fake_run(results, "e-held", "running", 0),
    ]
    (results / "not-a-run").mkdir()  # no lock file: not a run folder of ours
    held = _try_lock(results / "e-held")  # a live process trains it

    report = invoke(["report", "--results-dir", str(results)], data_root)
    assert report.exit_code == 0, report.output
    assert "4 folders of runs that never trained a step ignored" in report.output
    assert "a-interrupted" not in report.output and "d-resumable" in report.output

    dry = invoke(["clean", "--results-dir", str(results)], data_root)
    assert dry.exit_code == 0, dry.output
    listed = [
        line.split(":")[0] for line in dry.output.splitlines() if line.startswith(str(results))
    ]
    assert listed == [str(p) for p in [*untrained, kept[1]]]
    assert "Dry run: 4 folder(s) would be removed" in dry.output
    assert all(p.exists() for p in untrained)

    done = invoke(["clean", "--results-dir", str(results), "--yes"], data_root)
    assert done.exit_code == 0, done.output
    assert "Removed 3 folder(s); 1 left alone" in done.output
    assert not any(p.exists() for p in untrained)
    assert all(p.exists() for p in [completed, *kept, results / "not-a-run"])
    assert held is not None
    os.close(held)

    again = invoke(run_args(results), data_root)  # the completed run is skipped, said once
    assert again.exit_code == 0, again.output
    assert again.output.count(completed.name) == 1 and "already completed" in again.output
