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
    # the interrupted trial was the defaults trial: queued again, to run first on resume
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[0].user_attrs.get("interrupted") is True
    assert trials[1].user_attrs.get("defaults") is True
    assert trials[1].system_attrs["fixed_params"] == trials[0].params
    result = invoke(args, data_root)
    assert result.exit_code == 0, describe(result)
    trials = study_trials(results, "c:proxy_nca")
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 2 and "RUNNING" not in states
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert [t.number for t in finished if t.params == trials[0].params] == [1]


def test_two_commands_started_at_once_on_one_sqlite_study_enqueue_the_defaults_once(
    tmp_path: Path, data_root: Path
) -> None:
    """Two workers (processes) create or join one fresh study at the same moment and share its
    budget: one of them enqueues the defaults, both take trials."""
    results = tmp_path / "results"
    args = tune_args(results, "--study", "w", trials=3)
    processes = [launch(args, data_root, tmp_path / f"w{i}.log") for i in range(2)]
    for process in processes:
        code, output = process.finish(timeout=240)
        assert code == 0, output
    trials = study_trials(results, "w:proxy_nca")
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and not [t for t in trials if t.state.name == "WAITING"]
    marked = [t.number for t in trials if t.user_attrs.get("defaults")]
    assert marked == [0] and trials[0].state.name == "COMPLETE"
    defaults = trials[0].params
    assert defaults == {"scale": 9.0, "loss_lr": 0.1, "lr": 1e-3}
    assert [t.number for t in finished if t.params == defaults] == [0]
