"""Writing run records: atomic files, and run folders claimed by one process at a time.

The claim tests use real processes where the kernel's behaviour is the point (a lock held by a
live process, the lock released by ``kill -9``) and threads where only the race matters (``flock``
locks belong to open file descriptions, so two threads that open the lock file conflict exactly
as two processes do).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dml_bench.errors import UserError
from dml_bench.store import write
from dml_bench.store.write import (
    RunFolder,
    atomic_write_bytes,
    atomic_write_json,
    atomic_writer,
    claim_run,
    ensure_writable_dir,
    rows_to_csv,
)

RUN_ID = "hershey-proxy_nca-seed0-0123456789"


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_replaces_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
def test_records_get_the_users_umask(tmp_path: Path, umask: int) -> None:
    """Like ``open(path, "w")``: mkstemp alone would make them private, a fixed chmod would
    override a umask that keeps them private."""
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "metrics.csv", b"step\n0\n")
        claim = claim_run(tmp_path, RUN_ID)
        assert claim.folder is not None
        claim.folder.release()
    finally:
        os.umask(previous)
    for path in (tmp_path / "metrics.csv", tmp_path / RUN_ID / "lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert stat.S_IMODE((tmp_path / RUN_ID).stat().st_mode) == 0o777 & ~umask


def test_a_writer_failing_at_the_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "summary.json"
    atomic_write_bytes(target, b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(write.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert _temporaries(tmp_path) == []


def test_a_writer_failing_mid_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(write.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert _temporaries(tmp_path) == []


def test_unserialisable_json_never_touches_the_file(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert _temporaries(tmp_path) == []


def test_atomic_writer_block_that_raises_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "retrievals.npz"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half of the new content")
        raise RuntimeError("the writer died")
    assert target.read_bytes() == b"old"
    assert _temporaries(tmp_path) == []


def test_a_concurrent_reader_sees_old_or_new_never_a_mix(tmp_path: Path) -> None:
    target = tmp_path / "metrics.csv"
    versions = [b"a" * 200_000, b"b" * 300_000]
    atomic_write_bytes(target, versions[0])
    done = threading.Event()
    seen: set[bytes] = set()

    def reader() -> None:
        while not done.is_set():
            seen.add(target.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            atomic_write_bytes(target, versions[i % 2])
    finally:
        done.set()
        thread.join()
    assert seen <= set(versions)


def test_rows_to_csv_round_trips_floats_and_keeps_every_column() -> None:
    rows: list[dict[str, Any]] = [
        {"step": 0, "train_loss": None, "recall@1": 0.1 + 0.2},
        {"step": 5, "train_loss": 1 / 3, "recall@1": 2.0 / 7, "val_nmi": 1e-300},
    ]
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert list(parsed[0]) == ["step", "train_loss", "recall@1", "val_nmi"]
    assert parsed[0]["train_loss"] == "" and parsed[0]["val_nmi"] == ""
    assert float(parsed[0]["recall@1"]) == 0.1 + 0.2
    assert float(parsed[1]["train_loss"]) == 1 / 3
    assert float(parsed[1]["val_nmi"]) == 1e-300


def test_results_dir_under_a_regular_file_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="a-file/results"):
        ensure_writable_dir(blocker / "results")


# --- claiming run folders --------------------------------------------------------------------


def _claim(results: Path, run_id: str = RUN_ID, rerun: bool = False) -> RunFolder:
    claim = claim_run(results, run_id, rerun=rerun)
    assert claim.folder is not None, claim.skip_reason
    return claim.folder


def _finish(folder: RunFolder, status: write.Status) -> None:
    folder.write_json("config.json", {"run_id": folder.run_id})
    folder.write_status(status, 3, None)
    folder.release()


def test_a_new_run_is_claimed_and_held(tmp_path: Path) -> None:
    folder = _claim(tmp_path)
    assert folder.path == tmp_path / RUN_ID and not folder.resumed
    second = claim_run(tmp_path, RUN_ID)
    assert second.folder is None and "another process" in str(second.skip_reason)
    folder.release()


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_completed_and_failed_runs_are_skipped(tmp_path: Path, status: write.Status) -> None:
    _finish(_claim(tmp_path), status)
    claim = claim_run(tmp_path, RUN_ID)
    assert claim.folder is None
    assert f"already {status}" in str(claim.skip_reason) and "--rerun" in str(claim.skip_reason)


@pytest.mark.parametrize("status", ["interrupted", "running"])
def test_unfinished_runs_are_resumed(tmp_path: Path, status: write.Status) -> None:
    """ "running" with no lock holder: the process that wrote it died."""
    _finish(_claim(tmp_path), status)
    folder = _claim(tmp_path)
    assert folder.resumed and folder.path == tmp_path / RUN_ID
    folder.release()


def test_a_folder_claimed_but_never_written_starts_afresh(tmp_path: Path) -> None:
    _claim(tmp_path).release()  # killed before config.json was written
    folder = _claim(tmp_path)
    assert not folder.resumed
    folder.release()


def test_resuming_removes_temporaries_of_killed_writers(tmp_path: Path) -> None:
    _finish(_claim(tmp_path), "running")
    stale = tmp_path / RUN_ID / ".metrics.csv.abc123.tmp"
    stale.write_text("half a file")
    folder = _claim(tmp_path)
    assert not stale.exists()
    assert (tmp_path / RUN_ID / "config.json").exists()
    folder.release()


def test_rerun_trains_beside_the_old_run(tmp_path: Path) -> None:
    _finish(_claim(tmp_path), "completed")
    second = _claim(tmp_path, rerun=True)
    third = _claim(tmp_path, rerun=True)
    assert (second.path.name, third.path.name) == (f"{RUN_ID}-r2", f"{RUN_ID}-r3")
    assert not second.resumed and not third.resumed
    second.release()
    third.release()


def test_rerun_without_an_old_run_takes_the_plain_run_id(tmp_path: Path) -> None:
    folder = _claim(tmp_path, rerun=True)
    assert folder.path.name == RUN_ID
    folder.release()


def test_many_threads_racing_for_one_run_get_exactly_one_folder(tmp_path: Path) -> None:
    n = 8
    barrier = threading.Barrier(n)
    claims: list[write.Claim] = []
    lock = threading.Lock()

    def contender() -> None:
        barrier.wait()
        claim = claim_run(tmp_path, RUN_ID)
        with lock:
            claims.append(claim)

    threads = [threading.Thread(target=contender) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [c.folder for c in claims if c.folder is not None]
    assert len(claims) == n and len(winners) == 1
    winners[0].release()


HOLDER = """
import sys, time
from pathlib import Path
from dml_bench.store.write import claim_run
claim = claim_run(Path(sys.argv[1]), sys.argv[2])
claim.folder.write_json("config.json", {})
claim.folder.write_status("running", 7)
print("claimed", flush=True)
time.sleep(120)
"""


def test_a_live_process_keeps_its_run_and_kill_9_releases_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), RUN_ID], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        busy = claim_run(tmp_path, RUN_ID)
        assert busy.folder is None and "another process" in str(busy.skip_reason)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    folder = _claim(tmp_path)  # the kernel dropped the dead process's lock
    assert folder.resumed
    folder.release()
