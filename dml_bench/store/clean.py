"""Run folders that never trained a step, and their removal (``dml-bench clean``).

A run stopped before its first step (bad input met at start-up, a missing image, Ctrl-C while the
data loaded) leaves a folder with a config and a status but no training: nothing in it is a
result. Reports mention such folders in one line; ``dml-bench clean`` lists them (a dry run) and,
with ``--yes``, removes them. A folder another process holds (its ``lock``) is never touched, nor
one that has a checkpoint, a metric row after step 0, or a completed status.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dml_bench.store.write import _try_lock

#: The reason a report gives for such a folder.
NEVER_TRAINED = "never trained a step"
#: Files whose presence means the folder may hold a result.
_RESULT_FILES = ("checkpoint.pt", "summary.json")


@dataclass(frozen=True)
class Untrained:
    path: Path
    detail: str  # what the folder's status says, e.g. "interrupted at step 0 (stopped: ...)"


def never_trained(path: Path) -> str | None:
    """Why ``path`` is a run folder that never trained a step, or ``None`` when it may hold one
    (or is not a run folder: every run folder has the ``lock`` file it was claimed with)."""
    if not (path / "lock").is_file():
        return None
    if any((path / name).exists() for name in _RESULT_FILES):
        return None
    try:
        status = json.loads((path / "status.json").read_text())
    except (OSError, ValueError):
        status = None
    if not isinstance(status, dict):
        return "no status and no checkpoint" if not (path / "metrics.csv").exists() else None
    if status.get("status") == "completed" or status.get("step") not in (0, None):
        return None
    detail = f"{status.get('status')} at step 0"
    return f"{detail} ({status['reason']})" if status.get("reason") else detail


def find_untrained(results_dir: Path) -> list[Untrained]:
    """Folders under ``results_dir`` of runs that never trained a step (sorted by name)."""
    if not Path(results_dir).is_dir():
        return []
    found = []
    for path in sorted(Path(results_dir).iterdir()):
        if path.is_dir() and not path.name.startswith("."):
            detail = never_trained(path)
            if detail is not None:
                found.append(Untrained(path, detail))
    return found


def remove_untrained(folders: list[Untrained]) -> list[Path]:
    """Remove each folder that still never trained a step and no process holds; returns those
    removed (a folder claimed meanwhile by a run is left alone)."""
    removed = []
    for folder in folders:
        fd = _try_lock(folder.path) if folder.path.is_dir() else None
        if fd is None:
            continue
        try:
            if never_trained(folder.path) is not None:
                shutil.rmtree(folder.path)
                removed.append(folder.path)
        finally:
            os.close(fd)
    return removed
