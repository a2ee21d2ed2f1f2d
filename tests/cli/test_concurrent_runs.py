"""Two ``dml-bench run`` processes writing into one results directory at the same time.

Whatever the interleaving, every run ends completed, is trained by exactly one process (the other
skips it: "being trained by another process" while it trains, "already completed" after), every
record parses, no temporary file is left, and the numbers equal a run made alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.helpers import (
    Signalled,
    assert_same_results,
    describe,
    invoke,
    run_all,
    run_args,
    run_folders,
    shared_data_root,
    status_of,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """Every run of the tests below, trained by one process on its own."""
    results = tmp_path_factory.mktemp("alone")
    result = invoke(run_args(results, "--seeds", "0,1", methods="proxy_nca,nca"), data_root)
    assert result.exit_code == 0, describe(result)
    return results


def _trained_by(outcomes: dict[str, Signalled]) -> dict[str, list[str]]:
    """run_id -> the processes that logged training (or resuming) it."""
    trained: dict[str, list[str]] = {}
    for name, outcome in outcomes.items():
        for run_id in re.findall(r"^(?:train|resume) (\S+) on ", outcome.output, re.MULTILINE):
            trained.setdefault(run_id, []).append(name)
    return trained


def _check_results_dir(results: Path, alone: Path) -> None:
    for run in run_folders(results):
        assert status_of(run) == "completed", run.name
        for record in run.glob("*.json"):
            json.loads(record.read_text())
        assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
        assert_same_results(run, alone / run.name)


def test_the_same_command_twice_at_once_trains_each_run_once(
    tmp_path: Path, data_root: Path, alone: Path
) -> None:
    results = tmp_path / "results"
    args = run_args(results, methods="proxy_nca,nca")
    outcomes = run_all({"first": args, "second": args}, data_root, tmp_path / "logs")
    for name, outcome in outcomes.items():
        assert outcome.exit_code == 0, f"{name}:\n{outcome.output}"
    runs = run_folders(results)
    assert len(runs) == 2
    trained = _trained_by(outcomes)
    assert {run.name: len(trained.get(run.name, [])) for run in runs} == {
        run.name: 1 for run in runs
    }
    for run in runs:
        (trainer,) = trained[run.name]
        (other,) = set(outcomes) - {trainer}
        assert re.search(rf"{run.name}\s+skipped", outcomes[other].output), outcomes[other].output
    _check_results_dir(results, alone)


def test_different_overlapping_commands_at_once_train_each_run_once(
    tmp_path: Path, data_root: Path, alone: Path
) -> None:
    results = tmp_path / "results"
    commands = {
        "seed0": run_args(results, methods="proxy_nca,nca"),
        "seeds01_reversed": run_args(results, "--seeds", "1,0", methods="nca,proxy_nca"),
    }
    outcomes = run_all(commands, data_root, tmp_path / "logs")
    for name, outcome in outcomes.items():
        assert outcome.exit_code == 0, f"{name}:\n{outcome.output}"
    runs = run_folders(results)
    assert len(runs) == 4
    trained = _trained_by(outcomes)
    assert sorted(trained) == sorted(run.name for run in runs)
    assert all(len(by) == 1 for by in trained.values()), trained
    _check_results_dir(results, alone)
