"""A run whose loss stops being finite fails on its own: named step and values, the others go on.

A softmax scale of 1e200 overflows Proxy-NCA's logits at the first step (inf - inf = nan), while
NCA in the same command does not use that parameter; a learning rate of 1e30 blows up any method
after its first update.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dml_bench.train.loop import FINITE_CHECK_EVERY
from tests.cli.helpers import (
    describe,
    file_hashes,
    invoke,
    read_status,
    run_args,
    run_folders,
    shared_data_root,
    status_of,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def one_failed(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> tuple[Path, str, int]:
    """A command of two runs whose first run diverges: (results dir, output, exit code)."""
    results = tmp_path_factory.mktemp("failed")
    result = invoke(
        run_args(results, "--set", "proxy_nca.scale=1e200", methods="proxy_nca,nca"), data_root
    )
    return results, result.output, result.exit_code


def _run(results: Path, method: str) -> Path:
    (run,) = [r for r in run_folders(results) if f"-{method}-" in r.name]
    return run


def _non_finite_step(reason: str) -> int:
    match = re.search(r"Non-finite training loss at step (\d+)", reason)
    assert match, reason
    return int(match.group(1))


def test_a_diverging_run_is_failed_with_its_step_and_losses(
    one_failed: tuple[Path, str, int],
) -> None:
    results, output, code = one_failed
    assert code == 1, output
    status = read_status(_run(results, "proxy_nca"))
    assert status["status"] == "failed"
    assert _non_finite_step(status["reason"]) == 1
    assert "nan" in status["reason"]  # the loss values themselves
    assert "Lower the learning rate" in status["reason"]  # and the fix
    assert status["step"] <= FINITE_CHECK_EVERY  # found within a few steps, not at the end
    assert not (_run(results, "proxy_nca") / "summary.json").exists()
    assert "Traceback" not in output


def test_the_other_runs_of_the_command_go_on(one_failed: tuple[Path, str, int]) -> None:
    results, output, _ = one_failed
    nca = _run(results, "nca")
    assert status_of(nca) == "completed"
    assert (nca / "summary.json").exists()
    assert re.search(r"-proxy_nca-\S+\s+failed", output)
    assert re.search(r"-nca-\S+\s+completed", output)


def test_rerunning_skips_the_failed_run_and_changes_nothing(
    one_failed: tuple[Path, str, int], data_root: Path
) -> None:
    results, _, _ = one_failed
    before = file_hashes(results)
    result = invoke(
        run_args(results, "--set", "proxy_nca.scale=1e200", methods="proxy_nca,nca"), data_root
    )
    assert result.exit_code == 0, describe(result)
    assert "already failed" in result.output
    assert file_hashes(results) == before


def test_report_lists_the_failed_run_as_skipped(
    one_failed: tuple[Path, str, int], data_root: Path
) -> None:
    results, _, _ = one_failed
    result = invoke(
        ["report", "--results-dir", str(results), "--out", str(results.parent / "report-failed")],
        data_root,
    )
    assert result.exit_code == 0, describe(result)
    failed = _run(results, "proxy_nca").name
    assert re.search(rf"{failed}: status failed", result.output), result.output


def test_an_absurd_learning_rate_fails_within_a_few_steps(tmp_path: Path, data_root: Path) -> None:
    result = invoke(
        run_args(tmp_path, "--lr", "1e30", "--set", "proxy_nca.loss_lr=1e30"), data_root
    )
    assert result.exit_code == 1, describe(result)
    (run,) = run_folders(tmp_path)
    status = read_status(run)
    assert status["status"] == "failed"
    assert _non_finite_step(status["reason"]) <= FINITE_CHECK_EVERY
    assert status["step"] <= 2 * FINITE_CHECK_EVERY
