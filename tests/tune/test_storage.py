"""Opening a study storage: two commands started at once on a fresh database both get it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from dml_bench.tune import storage
from dml_bench.tune.storage import _retrying_schema_race


def test_a_fresh_sqlite_file_opened_by_four_commands_at_once(tmp_path: Path) -> None:
    """Optuna creates its tables check-then-create: without the retry, all but one of these
    fail with "table studies already exists"."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def command(beat: int) -> None:
        barrier.wait()
        try:
            storage.open_storage.__wrapped__(url, beat)  # uncached: each opens its own
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=command, args=(i + 1,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_only_the_schema_race_is_retried() -> None:
    calls: list[int] = []

    def racing() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError(
                "CREATE TABLE studies", {}, Exception("table studies already exists")
            )
        return "storage"

    assert _retrying_schema_race(racing) == "storage" and len(calls) == 3

    def unreachable() -> str:
        calls.append(1)
        raise OperationalError("connect", {}, Exception("could not connect to server"))

    calls.clear()
    with pytest.raises(OperationalError, match="could not connect"):
        _retrying_schema_race(unreachable)
    assert len(calls) == 1
