"""A killed or interrupted run resumes to exactly the result of an uninterrupted one.

The killed processes are real ``dml-bench run`` subprocesses (``kill -9`` gives them no chance to
clean up), started together so their start-up overlaps; the re-run that resumes each, and the
uninterrupted reference, run the same command in this process (``tests/cli/helpers.py`` says
why). On CPU the comparison is exact: every metric of every row of metrics.csv (timings excluded)
and the summary's final and best metrics.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
from pathlib import Path

import pytest

from dml_bench.train import loop
from tests.cli.helpers import (
    TINY_ARGS,
    Signalled,
    SignalPlan,
    assert_same_results,
    describe,
    file_hashes,
    invoke,
    metric_rows,
    only_run,
    read_status,
    run_args,
    shared_data_root,
    start_and_signal_all,
    status_of,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The uninterrupted run of the tiny command."""
    results = tmp_path_factory.mktemp("reference")
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    return only_run(results)


def _run_dir(results: Path) -> Path | None:
    folders = [p for p in results.iterdir() if p.is_dir()] if results.exists() else []
    return folders[0] if folders else None


def _lock_exists(results: Path) -> bool:
    run = _run_dir(results)
    return run is not None and (run / "lock").exists()


def _env_written(results: Path) -> bool:
    """config.json and env.json are written; the step-0 evaluation is (most likely) under way."""
    run = _run_dir(results)
    return run is not None and (run / "env.json").exists()


def _first_checkpoint_recorded(results: Path) -> bool:
    """status.json says step >= 3: it is written right after the checkpoint of step 3."""
    run = _run_dir(results)
    return run is not None and (run / "status.json").exists() and read_status(run)["step"] >= 3


def _second_evaluation_written(results: Path) -> bool:
    """metrics.csv has the row of step 6; the checkpoint of step 6 may or may not follow."""
    run = _run_dir(results)
    if run is None or not (run / "metrics.csv").exists():
        return False
    return len(metric_rows(run)) >= 2


KILL_MOMENTS = {
    "right_after_claiming_the_folder": _lock_exists,
    "during_the_first_evaluation": _env_written,
    "after_the_first_checkpoint": _first_checkpoint_recorded,
    "right_after_the_second_evaluation": _second_evaluation_written,
}
CTRL_C = "ctrl_c_after_the_first_checkpoint"
EVAL_EVERY = int(TINY_ARGS[TINY_ARGS.index("--eval-every") + 1])

Outcomes = dict[str, tuple[Path, Signalled]]


@pytest.fixture(scope="module")
def signalled(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Outcomes:
    """One ``dml-bench run`` subprocess per moment, all started at once: SIGKILL at each kill
    moment, SIGINT (Ctrl-C) once the first checkpoint is recorded. Each has its results dir."""
    base = tmp_path_factory.mktemp("signalled")
    plans = {
        name: SignalPlan(
            run_args(base / name), functools.partial(condition, base / name), signal.SIGKILL
        )
        for name, condition in KILL_MOMENTS.items()
    }
    # Ctrl-C goes to the real console script: signal handling in a fresh interpreter is the point.
    plans[CTRL_C] = SignalPlan(
        run_args(base / CTRL_C),
        functools.partial(_first_checkpoint_recorded, base / CTRL_C),
        signal.SIGINT,
        console_script=True,
    )
    outcomes = start_and_signal_all(plans, data_root, base / "logs")
    return {name: (base / name, outcome) for name, outcome in outcomes.items()}


def _resume_and_check(
    results: Path, data_root: Path, reference: Path, ignore: frozenset[str] = frozenset()
) -> str:
    """Re-run the command: it must complete, clean up, and equal the uninterrupted run."""
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    run = only_run(results)
    assert status_of(run) == "completed"
    assert not (run / "checkpoint.pt").exists()
    assert not list(run.glob(".*.tmp")), "a temporary file of an atomic write was left behind"
    assert_same_results(run, reference, ignore)
    return result.output


@pytest.mark.parametrize("moment", sorted(KILL_MOMENTS))
def test_kill_9_then_rerun_gives_the_uninterrupted_result(
    moment: str, signalled: Outcomes, data_root: Path, reference: Path
) -> None:
    results, outcome = signalled[moment]
    assert outcome.signalled, f"the run ended before it could be killed:\n{outcome.output}"
    assert outcome.exit_code == -signal.SIGKILL, outcome.output
    run = only_run(results)
    assert status_of(run) != "completed"
    checkpoint_step = read_status(run)["step"] if (run / "checkpoint.pt").exists() else None
    output = _resume_and_check(results, data_root, reference)
    if moment == "after_the_first_checkpoint":
        # It continued from the checkpoint instead of training from scratch.
        assert checkpoint_step is not None and checkpoint_step >= 3
        assert f"resuming at step {checkpoint_step}" in output, output


def test_ctrl_c_exits_130_records_interrupted_and_resumes(
    signalled: Outcomes, data_root: Path, reference: Path
) -> None:
    results, outcome = signalled[CTRL_C]
    assert outcome.signalled, f"the run ended before Ctrl-C:\n{outcome.output}"
    assert outcome.exit_code == 130, outcome.output
    assert "Traceback" not in outcome.output
    assert "Run the same command again to resume" in outcome.output
    run = only_run(results)
    status = read_status(run)
    assert status["status"] == "interrupted", status
    assert "Ctrl-C" in status["reason"]
    assert (run / "checkpoint.pt").exists()
    assert not (run / "summary.json").exists()
    output = _resume_and_check(results, data_root, reference)
    assert f"resuming at step {status['step']}" in output


def _sigint_at_step(monkeypatch: pytest.MonkeyPatch, at_step: int) -> None:
    """Deliver SIGINT to this process during optimiser step ``at_step`` (1-based), a step that is
    neither a checkpoint nor an evaluation step, as a user's Ctrl-C usually is."""
    calls = {"n": 0}
    train_step = loop.train_step

    def interrupting_step(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == at_step:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "train_step", interrupting_step)


def test_ctrl_c_between_checkpoints_resumes_exactly(
    tmp_path: Path, data_root: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 4 is neither a checkpoint nor an evaluation step: the interrupt flushes a short window
    of losses, and the resumed run's train_loss must still match bit for bit (it did not while
    the loop summed each window in float32 before adding it)."""
    results = tmp_path / "results"
    with monkeypatch.context() as patch:
        _sigint_at_step(patch, at_step=4)
        interrupted = invoke(run_args(results), data_root)
    assert interrupted.exit_code == 130, describe(interrupted)
    run = only_run(results)
    assert read_status(run)["status"] == "interrupted"
    assert read_status(run)["step"] == 4
    _resume_and_check(results, data_root, reference)


def _sigint_during_evaluation(monkeypatch: pytest.MonkeyPatch, evaluation: int) -> None:
    """Deliver SIGINT while the ``evaluation``-th evaluation (1-based; 1 = step 0) embeds the
    test split: the loop notices it after the first embedding batch."""
    calls = {"n": 0}
    evaluate_split = loop.evaluate_split

    def interrupting_evaluation(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == evaluation:
            os.kill(os.getpid(), signal.SIGINT)
        return evaluate_split(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "evaluate_split", interrupting_evaluation)


def test_ctrl_c_during_an_evaluation_resumes_exactly(
    tmp_path: Path, data_root: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    with monkeypatch.context() as patch:
        _sigint_during_evaluation(patch, evaluation=2)  # the evaluation at step 6
        interrupted = invoke(run_args(results), data_root)
    assert interrupted.exit_code == 130, describe(interrupted)
    run = only_run(results)
    assert read_status(run)["status"] == "interrupted"
    assert read_status(run)["step"] == 6
    _resume_and_check(results, data_root, reference)


def test_unreadable_checkpoint_is_set_aside_and_the_run_retrains(
    tmp_path: Path, data_root: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    with monkeypatch.context() as patch:
        _sigint_at_step(patch, at_step=5)
        assert invoke(run_args(results), data_root).exit_code == 130
    run = only_run(results)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    output = _resume_and_check(results, data_root, reference)
    assert "cannot be read" in output
    assert (run / "checkpoint.pt.unreadable").read_bytes() == b"not a checkpoint"


def test_rerunning_a_completed_command_skips_and_rewrites_nothing(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    results = tmp_path / "results"
    shutil.copytree(reference.parent, results)
    before = file_hashes(results)
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    assert "skipped" in result.output and "already completed" in result.output
    assert file_hashes(results) == before


def test_rerun_flag_trains_a_new_run_beside_the_old_one(
    tmp_path: Path, data_root: Path, reference: Path
) -> None:
    results = tmp_path / "results"
    shutil.copytree(reference.parent, results)
    before = file_hashes(results)
    result = invoke(run_args(results, "--rerun"), data_root)
    assert result.exit_code == 0, describe(result)
    second = results / f"{reference.name}-r2"
    assert status_of(second) == "completed"
    assert {k: v for k, v in file_hashes(results).items() if k in before} == before
    assert_same_results(second, reference)
    third = invoke(run_args(results, "--rerun"), data_root)
    assert third.exit_code == 0, describe(third)
    assert status_of(results / f"{reference.name}-r3") == "completed"
