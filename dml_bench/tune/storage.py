"""Where a study lives: Optuna's RDB storage, SQLite under the results directory by default.

Optuna's own distributed optimisation: every worker (processes on this machine, or the same command
on other machines against one ``postgresql://`` URL) opens the same storage and asks it for the
next trial. Heartbeats let a live worker take over the trial of a worker killed with ``kill -9``:
a running trial whose heartbeat is older than the grace period is failed and, once, retried with
the same parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Any

from dml_bench.errors import UserError
from dml_bench.redact import mask_text, mask_url
from dml_bench.store.read import TUNING_FOLDER

__all__ = ["TUNING_FOLDER", "StorageError", "default_storage", "mask_url", "open_storage"]

#: The SQLite file of a results directory's studies (the run reader skips the tuning folder).
STORAGE_FILE = "studies.db"


class StorageError(UserError):
    """The study storage cannot be opened or reached."""


def default_storage(results_dir: Path) -> str:
    path = (Path(results_dir) / TUNING_FOLDER / STORAGE_FILE).resolve()
    return f"sqlite:///{path}"


def check_url(url: str) -> None:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not (scheme == "sqlite" or scheme.startswith("postgresql") or scheme.startswith("mysql")):
        raise StorageError(
            f"--storage {mask_url(url)!r} is not a database URL dml-bench can use. Give "
            "postgresql://USER:PASSWORD@HOST:PORT/DB (every worker on every machine runs the same "
            "command with it), sqlite:///PATH, or leave --storage out for a SQLite file under "
            "the results directory."
        )


@functools.lru_cache(maxsize=4)
def open_storage(url: str, heartbeat_s: int) -> Any:
    """An Optuna RDB storage with heartbeats every ``heartbeat_s`` seconds (grace: 3 beats).

    Cached per process: a worker opens one connection pool however many trials it runs.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    check_url(url)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine: dict[str, Any] = {"connect_args": {"timeout": 120}}
    elif url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        engine = {"pool_pre_ping": True}

    def make() -> Any:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore")
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat_s,
                grace_period=3 * heartbeat_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )

    try:
        return _retrying_schema_race(make)
    except ImportError:  # Optuna's wording for a missing driver module
        raise StorageError(
            f"--storage {mask_url(url)!r} needs a database driver that is not installed. For "
            "PostgreSQL: pip install 'dml-bench[postgres]' (psycopg 3)."
        ) from None
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: unreachable server
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(
            f"Cannot open the study storage {mask_url(url)!r}: {mask_text(first)}. Check that the "
            "database server is running and reachable and that the URL's user, password, host, "
            "port and database are right, or leave --storage out to use a SQLite file under the "
            "results directory."
        ) from None


#: How often opening a storage is retried when another process created its tables meanwhile.
SCHEMA_RACE_TRIES = 5


def _retrying_schema_race(make: Any) -> Any:
    """``make()``, again when it failed because another process (two commands started at once on
    a fresh database) created Optuna's tables or version row between our check and our write:
    Optuna creates them with check-then-create, which is not atomic. Once they exist, opening
    succeeds."""
    for attempt in range(SCHEMA_RACE_TRIES - 1):
        try:
            return make()
        except Exception as exc:
            text = str(exc).lower()
            if not ("already exists" in text or "unique constraint" in text or "duplicate" in text):
                raise
            time.sleep(0.1 * (attempt + 1))
    return make()
