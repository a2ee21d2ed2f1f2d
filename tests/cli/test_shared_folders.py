"""``dml-bench run`` and ``datasets`` warn once about a results folder others can write into, and
everything a run writes gets the user's umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli.helpers import describe, invoke, only_run, run_args, shared_data_root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


def _open_results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o777)
    return results


def test_run_warns_once_about_a_results_folder_others_can_write(
    tmp_path: Path, data_root: Path
) -> None:
    results = _open_results(tmp_path)
    result = invoke(run_args(results, methods="proxy_nca,nca"), data_root)  # two runs
    assert result.exit_code == 0, describe(result)
    assert result.output.count("Warning:") == 1, result.output
    words = " ".join(result.output.split())  # the paragraph is wrapped at 100 columns
    assert f"the results folder {results} (every user)" in words
    assert "plant a checkpoint" in words


def test_datasets_warns_about_the_results_folder_and_is_quiet_otherwise(
    tmp_path: Path, data_root: Path
) -> None:
    results = _open_results(tmp_path)
    warned = invoke(["datasets", "--results-dir", str(results)], data_root)
    assert warned.exit_code == 0, describe(warned)
    assert warned.output.count("Warning:") == 1
    results.chmod(0o755)
    quiet = invoke(["datasets", "--results-dir", str(results)], data_root)
    assert quiet.exit_code == 0 and "Warning" not in quiet.output, quiet.output
    missing = invoke(["datasets", "--results-dir", str(tmp_path / "none")], data_root)
    assert "Warning" not in missing.output


def test_every_file_a_run_writes_gets_the_users_umask(tmp_path: Path) -> None:
    """A private umask (077) keeps records, checkpoint, lock and the Hershey cache private."""
    data_root, results = tmp_path / "data", tmp_path / "results"
    previous = os.umask(0o077)
    try:
        result = invoke(run_args(results, "--steps", "3", "--checkpoint-every", "2"), data_root)
    finally:
        os.umask(previous)
    assert result.exit_code == 0, describe(result)
    assert "Warning" not in result.output
    files = [p for p in [*results.rglob("*"), *data_root.rglob("*")] if p.is_file()]
    assert {"config.json", "metrics.csv", "lock"} <= {p.name for p in files}
    assert any(p.suffix == ".npz" for p in data_root.rglob("*"))  # the Hershey cache
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(only_run(results).stat().st_mode) == 0o700
