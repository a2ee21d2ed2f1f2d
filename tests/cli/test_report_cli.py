"""``dml-bench report`` on a results directory with odd run folders: it reports what it can, and
lists every folder it left out with the reason, instead of crashing. It never writes into a run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.helpers import (
    describe,
    file_hashes,
    invoke,
    only_run,
    run_args,
    shared_data_root,
)


@pytest.fixture(scope="module")
def odd_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One completed run plus copies of it damaged in the ways a crash or a person can."""
    data_root = shared_data_root(tmp_path_factory)
    results = tmp_path_factory.mktemp("odd")
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    good = only_run(results)
    prefix = "hershey-proxy_nca-seed9-"

    broken = shutil.copytree(good, results / f"{prefix}broken-status")
    (broken / "status.json").write_text('{"status": "compl')  # cut mid-write by hand
    interrupted = shutil.copytree(good, results / f"{prefix}interrupted")
    status = json.loads((interrupted / "status.json").read_text())
    status.update(status="interrupted", reason="interrupted by the user (Ctrl-C)")
    (interrupted / "status.json").write_text(json.dumps(status))
    (interrupted / "summary.json").unlink()
    garbled = shutil.copytree(good, results / f"{prefix}garbled-summary")
    (garbled / "summary.json").write_bytes(b"\x00\xff not json")
    claimed = results / f"{prefix}claimed-only"  # killed right after claiming its folder
    claimed.mkdir()
    (claimed / "lock").touch()
    (results / "notes.txt").write_text("a stray file is not a run")
    return results, data_root


def test_report_skips_and_lists_unusable_runs(odd_results: tuple[Path, Path]) -> None:
    results, data_root = odd_results
    runs_before = file_hashes(results)
    out = results.parent / "odd-report"
    result = invoke(["report", "--results-dir", str(results), "--out", str(out)], data_root)
    assert result.exit_code == 0, describe(result)
    assert "Traceback" not in result.output
    assert "| proxy_nca |" in result.output  # the good run is in the table
    for suffix, reason in [
        ("broken-status", "status.json"),
        ("interrupted", "interrupted"),
        ("garbled-summary", "summary.json"),
    ]:
        lines = [line for line in result.output.splitlines() if f"seed9-{suffix}:" in line]
        assert lines, f"{suffix} not listed as skipped:\n{result.output}"
        assert reason in lines[0]
    # A folder claimed but never trained holds no result: counted in one line, not listed.
    assert "claimed-only" not in result.output
    assert "1 folder of runs that never trained a step ignored" in result.output
    assert (out / "report.md").exists()
    assert file_hashes(results) == runs_before  # reading never writes into a run folder
