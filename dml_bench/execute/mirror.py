"""Run folders on the driver's machine, kept up to date by runs that train on other nodes.

The nodes of a Ray cluster need not share a filesystem, so a run trains in a scratch folder on its
node (:mod:`dml_bench.execute.remote`) and its records come back as bytes to :class:`RunMirror`, a
Ray actor pinned to the driver's node, which writes them into the results directory the user named
with the store's atomic writes. The driver claims (``flock``) every run folder before it submits
the run, exactly as ``--executor local`` does, and holds the claim until the run's task ends: no
other ``dml-bench run`` trains it meanwhile, and the mirror writes only into folders the driver
allowed (:meth:`RunMirror.allow`).

When are files sent? Each time the run writes its status (:class:`MirroredFolder`): at start,
right after every checkpoint, when it completes, fails or is interrupted. Every file changed since
the last push goes in one call, ``status.json`` last, so the driver's folder is always a state the
run passed through: a checkpoint and the metrics and status written with it. That is where
checkpoints live for other nodes: when a node or worker dies, Ray runs the task again (elsewhere
if need be), and the new attempt starts from :meth:`RunMirror.snapshot`, the run folder as the
driver holds it, checkpoint included, so it resumes from the last checkpoint, not step 0.

Each snapshot starts a new *attempt*; a push from an older attempt (a worker cut off but still
running) is refused, so two attempts never write one run's records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dml_bench.store.records import STATUS_FILE
from dml_bench.store.write import RunFolder, Status, atomic_write_bytes

#: Files of a run folder that stay on the machine where they are: the claim's lock file.
LOCAL_ONLY = frozenset({"lock"})


class Superseded(BaseException):
    """A newer attempt of this run has started: this one must stop writing at once.

    A ``BaseException``, like ``KeyboardInterrupt``: the loop's ``except Exception`` (which records
    a broken run as failed) must not catch it and write a failed status for the run."""


@dataclass(frozen=True)
class Event:
    """What a run tells the driver: ``start`` (node, pid, attempt) or ``log`` (a log line)."""

    run_id: str
    kind: str
    node: str
    pid: int
    attempt: int = 0
    level: int = 0
    message: str = ""


def record_files(folder: Path) -> dict[str, Path]:
    """The files of a run folder that travel, by relative POSIX path: everything but the lock
    and the temporary files of atomic writes (``.NAME.XXXX.tmp``)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in LOCAL_ONLY and not path.name.startswith("."):
            found[rel] = path
    return found


def checked_name(name: str) -> PurePosixPath:
    """A relative path that stays inside its run folder, or ValueError."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts or name in LOCAL_ONLY:
        raise ValueError(f"not a record file name: {name!r}")
    return path


class RunMirror:
    """The driver-side end: run folders under ``results_dir`` (made a Ray actor by
    :mod:`dml_bench.execute.cluster`; a plain class, so it is tested without Ray)."""

    def __init__(self, results_dir: str) -> None:
        self.results_dir = Path(results_dir)
        self.allowed: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.events: list[Event] = []
        self.trees: set[str] = set()

    def allow(self, run_ids: list[str]) -> None:
        """Run folders the driver has claimed: the only ones written."""
        self.allowed.update(run_ids)

    def _folder(self, run_id: str) -> Path:
        if run_id not in self.allowed:
            raise ValueError(f"run {run_id!r} was not claimed by this command")
        return self.results_dir / run_id

    def snapshot(self, run_id: str) -> tuple[int, dict[str, bytes]]:
        """Start a new attempt of ``run_id``: its number and the run folder's files."""
        folder = self._folder(run_id)
        attempt = self.attempts.get(run_id, 0) + 1
        self.attempts[run_id] = attempt
        return attempt, {rel: path.read_bytes() for rel, path in record_files(folder).items()}

    def put(
        self, run_id: str, attempt: int, files: list[tuple[str, bytes]], removed: list[str]
    ) -> bool:
        """Write ``files`` in order (each atomically) and delete ``removed``; ``False`` (and
        nothing written) when ``attempt`` is not the run's latest."""
        folder = self._folder(run_id)
        if self.attempts.get(run_id) != attempt:
            return False
        for name, data in files:
            path = folder / checked_name(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        for name in removed:
            (folder / checked_name(name)).unlink(missing_ok=True)
        return True

    def allow_tree(self, prefix: str) -> None:
        """A folder every worker of a tuning study writes into (each trial its own folder)."""
        self.trees.add(prefix)

    def put_tree(self, prefix: str, files: list[tuple[str, bytes]]) -> None:
        """Write the files of finished trials under ``results_dir/prefix`` (each atomically).
        A trial folder is written by the one worker that ran the trial: no attempts needed."""
        if prefix not in self.trees:
            raise ValueError(f"{prefix!r} was not opened by this command")
        for name, data in files:
            path = self.results_dir / checked_name(prefix) / checked_name(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)

    def report(self, event: Event) -> None:
        self.events.append(event)

    def drain(self) -> list[Event]:
        """The events reported since the last call (the driver polls)."""
        events, self.events = self.events, []
        return events


def signature(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


@dataclass
class MirroredFolder(RunFolder):
    """A run's scratch folder on its node whose records are pushed to the driver's
    :class:`RunMirror` each time the run writes its status (see the module docstring).

    ``push(run_id, attempt, files, removed) -> bool`` sends one batch (a call of the actor's
    :meth:`RunMirror.put` in the cluster; the mirror itself in tests)."""

    push: Any = None
    attempt: int = 0
    synced: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def write_status(self, status: Status, step: int, reason: str | None = None) -> None:
        super().write_status(status, step, reason)
        self.sync()

    def mark_synced(self) -> None:
        """The folder as it is now is what the driver holds (just unpacked from a snapshot)."""
        self.synced = {rel: signature(p) for rel, p in record_files(self.path).items()}

    def sync(self) -> None:
        """Push every file changed since the last push (``status.json`` last) and the names of
        files deleted since; raise :class:`Superseded` if a newer attempt has started."""
        current = (
            {rel: signature(p) for rel, p in record_files(self.path).items()}
            if self.path.exists()
            else {}
        )
        changed = sorted(
            (rel for rel, sig in current.items() if self.synced.get(rel) != sig),
            key=lambda rel: (rel == STATUS_FILE, rel),
        )
        removed = sorted(rel for rel in self.synced if rel not in current)
        if not changed and not removed:
            return
        files = [(rel, (self.path / rel).read_bytes()) for rel in changed]
        if not self.push(self.run_id, self.attempt, files, removed):
            raise Superseded(f"{self.run_id}: attempt {self.attempt} was superseded")
        self.synced = current


def unpack(folder: Path, files: dict[str, bytes]) -> None:
    """Write a snapshot's files into a new scratch folder."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        path = folder / checked_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # no fsync: the driver's copy is the record, this one a cache
