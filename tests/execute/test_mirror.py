"""The mirror keeps the driver's run folders: only claimed runs, only the latest attempt, files
inside the folder, status.json last. Plain classes, tested without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dml_bench.execute.mirror import MirroredFolder, RunMirror, Superseded, record_files, unpack


@pytest.fixture
def mirror(tmp_path: Path) -> RunMirror:
    (tmp_path / "results" / "run-a").mkdir(parents=True)
    (tmp_path / "results" / "run-a" / "lock").write_text("")
    mirror = RunMirror(str(tmp_path / "results"))
    mirror.allow(["run-a"])
    return mirror


def node_folder(tmp_path: Path, mirror: RunMirror, name: str = "node") -> MirroredFolder:
    attempt, files = mirror.snapshot("run-a")
    path = tmp_path / name / "run-a"
    unpack(path, files)
    folder = MirroredFolder(path, resumed=bool(files), push=mirror.put, attempt=attempt)
    folder.mark_synced()
    return folder


def test_a_status_write_pushes_every_changed_file_with_the_status_last(
    tmp_path: Path, mirror: RunMirror
) -> None:
    pushed: list[list[str]] = []

    def push(run_id: str, attempt: int, files: list[tuple[str, bytes]], removed: list[str]) -> bool:
        pushed.append([name for name, _ in files])
        return mirror.put(run_id, attempt, files, removed)

    folder = node_folder(tmp_path, mirror)
    folder.push = push
    (folder.path / "checkpoint.pt").write_bytes(b"weights")
    (folder.path / "tensorboard").mkdir()
    (folder.path / "tensorboard" / "events").write_bytes(b"e")
    folder.write_metrics([{"step": 0, "recall@1": 0.5}])
    folder.write_status("running", 3)
    assert pushed == [["checkpoint.pt", "metrics.csv", "tensorboard/events", "status.json"]]
    driver = mirror.results_dir / "run-a"
    assert (driver / "checkpoint.pt").read_bytes() == b"weights"
    assert (driver / "tensorboard" / "events").read_bytes() == b"e"
    assert json.loads((driver / "status.json").read_text())["step"] == 3
    folder.write_status("running", 6)  # only the status changed
    assert pushed[-1] == ["status.json"]
    (folder.path / "checkpoint.pt").unlink()
    folder.sync()
    assert not (driver / "checkpoint.pt").exists() and (driver / "metrics.csv").exists()
    assert (driver / "lock").exists()  # the driver's lock file is never touched


def test_a_new_attempt_starts_from_the_driver_folder_and_the_old_one_is_refused(
    tmp_path: Path, mirror: RunMirror
) -> None:
    first = node_folder(tmp_path, mirror, "first")
    (first.path / "checkpoint.pt").write_bytes(b"step 3")
    first.write_status("running", 3)
    (first.path / "checkpoint.pt").write_bytes(b"step 6, never pushed")  # then the worker died
    second = node_folder(tmp_path, mirror, "second")
    assert second.resumed
    assert (second.path / "checkpoint.pt").read_bytes() == b"step 3"
    assert set(record_files(second.path)) == {"checkpoint.pt", "status.json"}  # no lock
    with pytest.raises(Superseded):
        first.write_status("running", 6)
    assert (mirror.results_dir / "run-a" / "checkpoint.pt").read_bytes() == b"step 3"


def test_the_mirror_writes_only_inside_folders_the_driver_claimed(
    tmp_path: Path, mirror: RunMirror
) -> None:
    attempt, _ = mirror.snapshot("run-a")
    for name in ("../escaped", "/etc/x", "a/../../b", "lock"):
        with pytest.raises(ValueError, match="not a record file name"):
            mirror.put("run-a", attempt, [(name, b"x")], [])
    with pytest.raises(ValueError, match="not claimed"):
        mirror.put("run-b", 1, [("status.json", b"{}")], [])
    with pytest.raises(ValueError, match="not claimed"):
        mirror.snapshot("../results")
    assert not (tmp_path / "escaped").exists()
    assert sorted(p.name for p in (mirror.results_dir / "run-a").iterdir()) == ["lock"]


def test_events_are_drained_once(mirror: RunMirror) -> None:
    from dml_bench.execute.mirror import Event

    mirror.report(Event("run-a", "start", "node", 1, attempt=1))
    assert [e.kind for e in mirror.drain()] == ["start"]
    assert mirror.drain() == []
