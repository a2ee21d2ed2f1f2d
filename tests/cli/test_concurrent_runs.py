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


SAME = ("first", "second")  # the same command, twice
OVERLAPPING = "overlapping"  # another command: more seeds, methods in the other order


@pytest.fixture(scope="module")
def together(
    tmp_path_factory: pytest.TempPathFactory, data_root: Path
) -> tuple[Path, dict[str, Signalled]]:
    """Three ``dml-bench run`` processes started at once into one results directory."""
    base = tmp_path_factory.mktemp("together")
    results = base / "results"
    same = run_args(results, methods="proxy_nca,nca")
    commands = {
        SAME[0]: same,
        SAME[1]: same,
        OVERLAPPING: run_args(results, "--seeds", "1,0", methods="nca,proxy_nca"),
    }
    return results, run_all(commands, data_root, base / "logs")


def test_every_process_succeeds_and_every_run_completes(
    together: tuple[Path, dict[str, Signalled]], alone: Path
) -> None:
    results, outcomes = together
    for name, outcome in outcomes.items():
        assert outcome.exit_code == 0, f"{name}:\n{outcome.output}"
    assert len(run_folders(results)) == 4
    _check_results_dir(results, alone)


def test_every_run_is_trained_by_exactly_one_process(
    together: tuple[Path, dict[str, Signalled]],
) -> None:
    results, outcomes = together
    trained = _trained_by(outcomes)
    assert sorted(trained) == sorted(run.name for run in run_folders(results))
    assert all(len(by) == 1 for by in trained.values()), trained


def test_the_same_command_skips_what_the_other_trains(
    together: tuple[Path, dict[str, Signalled]],
) -> None:
    """Each run of the doubled command is skipped by whichever of the two did not train it."""
    results, outcomes = together
    trained = _trained_by(outcomes)
    for run in run_folders(results):
        if "seed0" not in run.name:
            continue
        (trainer,) = trained[run.name]
        for other in set(SAME) - {trainer}:
            assert re.search(rf"{run.name}\s+skipped", outcomes[other].output), outcomes[
                other
            ].output
