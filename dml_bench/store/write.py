"""Writing run records: atomically, append-only, safe with concurrent writers.

Layout: ``results/README.md``. Every file is written to a temporary file in the same folder,
fsynced and renamed over the target, so a kill at any instant leaves the old or the new version,
never a torn one. A run folder is claimed with ``os.mkdir`` (atomic) and held with an advisory
``flock`` on its ``lock`` file while a process trains it, so two ``dml-bench run`` processes that
share a results directory never train, or overwrite, the same run; the kernel drops the lock when a
process dies, even by ``kill -9``, so a crashed run can be resumed.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dml_bench.errors import UserError
from dml_bench.redact import mask_secrets
from dml_bench.store.records import (
    METRICS_FILE,
    STATUS_FILE,
    RecordError,
    Status,
    StatusRecord,
)

logger = logging.getLogger(__name__)

#: Re-exported for writers: the states a run goes through (``dml_bench.store.records``).
__all__ = ["Status"]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: Mode asked for when a record file is created; the kernel takes the user's umask off it, as it
#: does for ``open(path, "w")`` (``mkstemp`` alone would make every file private to its owner,
#: and a fixed ``chmod`` would override a umask that keeps records private).
CREATE_MODE = 0o666


def create_temporary(directory: Path, prefix: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new file ``directory/PREFIX<random>SUFFIX`` opened for writing (descriptor, path), with
    the permissions the user's umask gives new files; never an existing file (``O_EXCL``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = Path(directory) / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(path, flags, CREATE_MODE), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {directory}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a reader, or a kill at any instant, sees the old or the
    new content, never a mix; the temporary file is removed when writing fails."""
    fd, tmp = create_temporary(path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces ``path`` atomically on success."""
    buffer = io.BytesIO()
    yield buffer
    atomic_write_bytes(path, buffer.getvalue())


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return value


def ensure_writable_dir(results_dir: Path) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=results_dir, prefix=".probe", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(
            f"The results directory {str(results_dir)!r} cannot be written ({exc.strerror or exc}). "
            "Choose a writable directory with --results-dir, or fix its permissions."
        ) from None


@dataclass
class RunFolder:
    """A claimed run folder; the claim (flock) lasts until :meth:`release`."""

    path: Path
    resumed: bool
    _lock_fd: int | None = None

    @property
    def run_id(self) -> str:
        return self.path.name

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- records -------------------------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> None:
        """Write a JSON record with every credential in it masked (:mod:`dml_bench.redact`):
        records travel with the folder, the passwords a run used must not."""
        atomic_write_json(self.path / name, mask_secrets(data))

    def write_status(self, status: Status, step: int, reason: str | None = None) -> None:
        self.write_json(STATUS_FILE, StatusRecord.now(status, step, reason).to_json())

    def write_metrics(self, rows: Sequence[Mapping[str, Any]]) -> None:
        atomic_write_text(self.path / METRICS_FILE, rows_to_csv(rows))

    def write_bytes(self, name: str, data: bytes) -> None:
        atomic_write_bytes(self.path / name, data)


def read_status_record(path: Path) -> StatusRecord | None:
    """The status of the run folder ``path``, or ``None`` when it has no readable one."""
    try:
        data = json.loads((path / STATUS_FILE).read_text())
        return StatusRecord.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, RecordError):
        return None


def read_status(path: Path) -> str | None:
    record = read_status_record(path)
    return None if record is None else record.status


def _try_lock(path: Path) -> int | None:
    fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, CREATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass(frozen=True)
class Claim:
    """The outcome of asking for a run folder: a folder to train in, or why not."""

    folder: RunFolder | None
    skip_reason: str | None = None


def claim_run(results_dir: Path, run_id: str, rerun: bool = False) -> Claim:
    """Claim the folder for ``run_id``: new, resumable, or (with ``rerun``) a fresh sibling.

    A completed or failed run is skipped (``--rerun`` starts a new one beside it, or takes the
    plain ``run_id`` when no folder has it yet); a run whose lock another live process holds is
    skipped; an interrupted run, or a "running" one whose process died, is resumed.
    """
    path = results_dir / run_id
    for _ in range(3):  # a folder removed by another process between our steps: look again
        try:
            return _claim_at(results_dir, path, rerun)
        except FileNotFoundError:
            continue
    raise RuntimeError(f"run folder {path} keeps disappearing while it is claimed")


def _claim_at(results_dir: Path, path: Path, rerun: bool) -> Claim:
    try:
        path.mkdir()
    except FileExistsError:
        if rerun:
            return Claim(_claim_fresh_sibling(results_dir, path.name))
        return _claim_existing(path)
    fd = _try_lock(path)
    if fd is None:  # another process created it a moment ago and holds it
        return Claim(None, "being trained by another process")
    return Claim(RunFolder(path, resumed=False, _lock_fd=fd))


def _claim_existing(path: Path) -> Claim:
    fd = _try_lock(path)
    if fd is None:
        return Claim(None, "being trained by another process")
    status = read_status(path)
    if status in ("completed", "failed"):
        os.close(fd)
        return Claim(None, f"already {status} (use --rerun to train it again beside the old one)")
    remove_stale_temporaries(path)
    has_state = (path / "config.json").exists()
    return Claim(RunFolder(path, resumed=has_state, _lock_fd=fd))


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a kill (``.NAME.XXXX.tmp``).

    Only called by the lock holder: no other process can be writing into the folder, so every
    temporary file in it belongs to a writer that died.
    """
    for tmp in path.glob(".*.tmp"):
        logger.debug("removing %s, left by a writer that was killed", tmp)
        tmp.unlink(missing_ok=True)


def _claim_fresh_sibling(results_dir: Path, run_id: str) -> RunFolder:
    n = 2
    while True:
        path = results_dir / f"{run_id}-r{n}"
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        fd = _try_lock(path)
        if fd is None:
            n += 1
            continue
        return RunFolder(path, resumed=False, _lock_fd=fd)
