"""``dml-bench tune`` as real processes: a worker killed with ``kill -9`` mid-trial, and Ctrl-C.

The study must end with exactly N finished trials, none left running, whatever happens to a
worker; the heartbeat (1 s here, so a silent trial is stale after 3 s) hands a dead worker's
trial to a live one.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import optuna
import pytest

from dml_bench.tune.storage import default_storage
from tests.cli.helpers import describe, invoke, launch, shared_data_root
from tests.cli.test_tune import tune_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


def running_fold_of(results: Path, pid: int) -> bool:
    """Whether process ``pid`` is training a trial's fold (its status.json says so)."""
    for path in results.glob("tuning/*/*/trial-*/fold-*/status.json"):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if status.get("pid") == pid and status.get("status") == "running":
            return True
    return False


def wait_for(condition: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def study_trials(results: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=default_storage(results))
    return study.get_trials(deepcopy=False)


def test_a_worker_killed_mid_trial_leaves_nothing_running_and_the_study_ends_at_n(
    tmp_path: Path, data_root: Path
) -> None:
    results = tmp_path / "results"
    args = tune_args(results, "--study", "k", "--heartbeat", "1", trials=4)
    first = launch(args, data_root, tmp_path / "first.log")
    wait_for(lambda: running_fold_of(results, first.pid))
    second = launch(args, data_root, tmp_path / "second.log")
    first.send_signal(signal.SIGKILL)
    code, output = first.finish(timeout=30)
    assert code == -signal.SIGKILL
    code, output = second.finish(timeout=240)
    assert code == 0, output
    trials = study_trials(results, "k:proxy_nca")
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 4
    assert "RUNNING" not in states and "WAITING" not in states
    killed = [t for t in trials if t.state.name == "FAIL" and not t.user_attrs.get("surplus")]
    assert len(killed) == 1  # the killed worker's trial, failed by the heartbeat check ...
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params  # ... and run again


def test_ctrl_c_stops_cleanly_and_the_same_command_continues(
    tmp_path: Path, data_root: Path
) -> None:
    results = tmp_path / "results"
    args = tune_args(results, "--study", "c", trials=2)
    process = launch(args, data_root, tmp_path / "tune.log")
    wait_for(lambda: running_fold_of(results, process.pid))
    process.send_signal(signal.SIGINT)
    code, output = process.finish(timeout=60)
    assert code == 130, output
    assert "Run the same command again to continue" in output and "Traceback" not in output
    trials = study_trials(results, "c:proxy_nca")
    assert [t.state.name for t in trials] == ["FAIL"]
    assert trials[0].user_attrs.get("interrupted") is True
    result = invoke(args, data_root)
    assert result.exit_code == 0, describe(result)
    states = [t.state.name for t in study_trials(results, "c:proxy_nca")]
    assert states.count("COMPLETE") + states.count("PRUNED") == 2 and "RUNNING" not in states
