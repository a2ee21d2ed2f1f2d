"""Running a plan: resolved run configs (:mod:`dml_bench.train.plan`) become recorded runs.

:func:`run_experiment` trains them one after another, skipping completed runs, resuming unfinished
ones, and recording a failed run as failed while the others go on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dml_bench.config import to_dict
from dml_bench.errors import UserError
from dml_bench.methods import METHODS
from dml_bench.store.records import CONFIG_FILE
from dml_bench.store.write import (
    RunFolder,
    claim_run,
    ensure_writable_dir,
    read_status,
    read_status_record,
)
from dml_bench.train.checkpoint import CHECKPOINT, CheckpointRefusedError, check_checkpoint
from dml_bench.train.config import RunConfig
from dml_bench.train.data import RunData, load_run_data
from dml_bench.train.device import resolve_device
from dml_bench.train.loop import ProgressFactory, train_run
from dml_bench.train.recording import write_run_records
from dml_bench.train.sampling import BatchPlan

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    run_id: str
    variant: str
    seed: int
    status: str  # completed | failed | skipped
    reason: str | None = None
    final: dict[str, Any] = field(default_factory=dict)


def run_experiment(
    configs: Sequence[RunConfig],
    results_dir: Path,
    *,
    rerun: bool = False,
    progress: ProgressFactory | None = None,
) -> list[RunOutcome]:
    """Train ``configs`` one after another into ``results_dir``.

    Every check that needs the data (device, dataset files, batch composition against the train
    split) runs for all runs still to train *before* the first run folder is claimed, so bad input
    leaves the results directory exactly as it was.
    """
    data_cache: dict[str, RunData] = {}
    preflight(runs_to_train(configs, results_dir, rerun), data_cache)
    outcomes: list[RunOutcome] = []
    for config in configs:
        claim = claim_run(results_dir, config.run_id(), rerun=rerun)
        if claim.folder is None:
            logger.debug("skip %s: %s", config.run_id(), claim.skip_reason)
            outcomes.append(
                RunOutcome(
                    config.run_id(), config.variant, config.seed, "skipped", claim.skip_reason
                )
            )
            continue
        outcomes.append(train_claimed(config, claim.folder, data_cache, progress))
    return outcomes


def runs_to_train(configs: Sequence[RunConfig], results_dir: Path, rerun: bool) -> list[RunConfig]:
    """The runs of ``configs`` that are not finished yet, after the checks that need no data:
    the results directory can be written, and no checkpoint to resume is refused (any executor
    makes these checks before it claims a run folder)."""
    ensure_writable_dir(results_dir)
    pending = [c for c in configs if rerun or not _finished(results_dir / c.run_id())]
    if not rerun:  # --rerun trains in new folders and loads no checkpoint
        for config in pending:
            check_checkpoint(results_dir / config.run_id() / CHECKPOINT)
    return pending


def train_claimed(
    config: RunConfig,
    folder: RunFolder,
    data_cache: dict[str, RunData],
    progress: ProgressFactory | None,
) -> RunOutcome:
    """Train one claimed run; a failure is recorded in its folder and returned, not raised."""
    try:
        check_checkpoint(folder.path / CHECKPOINT)  # planted after the preflight: still refused
        device = resolve_device(config.device)
        data = _cached_data(config, data_cache)
        write_run_records(config, folder, data, device)
        logger.info("%s %s on %s", "resume" if folder.resumed else "train", folder.run_id, device)
        result = train_run(config, data, folder, device, progress)
        final = result.rows[-1] if result.rows else {}
        return RunOutcome(
            folder.run_id, config.variant, config.seed, result.status, result.reason, final
        )
    except KeyboardInterrupt:
        forget_if_empty(folder.path)
        raise
    except CheckpointRefusedError:  # the folder holds a file nobody should load: change nothing
        raise
    except UserError as exc:  # e.g. a corrupt image met while training: fixable, so resumable
        if not forget_if_empty(folder.path):
            folder.write_status("interrupted", _last_step(folder.path), f"stopped: {exc}")
        raise
    except Exception as exc:  # one broken run must not take the others down
        reason = f"{type(exc).__name__}: {exc}"
        folder.write_status("failed", _last_step(folder.path), reason)
        logger.error("run %s failed: %s", folder.run_id, reason)
        logger.debug("traceback of %s", folder.run_id, exc_info=True)
        return RunOutcome(folder.run_id, config.variant, config.seed, "failed", reason)
    finally:
        folder.release()


def preflight(configs: Sequence[RunConfig], data_cache: dict[str, RunData]) -> None:
    """Raise the UserError a run would meet at start-up (no GPU, missing data files or broken
    listings, a batch the train split cannot fill) before any run folder is touched. Images are
    decoded only when read: a corrupt image stops its run later, recorded as interrupted."""
    for config in configs:
        resolve_device(config.device)
        data = _cached_data(config, data_cache)
        needs = METHODS.get(config.method).batch_needs(config.method_config)
        BatchPlan(data.train.labels, config.batch_size, config.seed, needs.m_per_class)


def _finished(path: Path) -> bool:
    """A completed or failed run is skipped without ``--rerun``, so it needs no preflight."""
    return read_status(path) in ("completed", "failed")


def _last_step(path: Path) -> int:
    record = read_status_record(path)
    return 0 if record is None else record.step


def forget_if_empty(path: Path) -> bool:
    """A run folder claimed but never written (e.g. the data was missing) is removed again;
    returns whether it was (``False``: the folder holds a run and stays).

    Best effort: it must never hide the error being raised, e.g. when another process has just
    claimed the folder (it re-creates ``lock``, so the rmdir fails and the folder stays theirs).
    """
    if (path / CONFIG_FILE).exists():
        return False
    with contextlib.suppress(OSError):
        (path / "lock").unlink(missing_ok=True)
        path.rmdir()
    return True


def _cached_data(config: RunConfig, cache: dict[str, RunData]) -> RunData:
    key = repr(
        (
            config.dataset,
            to_dict(config.dataset_config),
            config.val_classes,
            config.seed if config.val_classes else None,
            config.resize,
            config.crop,
            config.trunk,
            config.data_root,
            config.download,
            config.prepared,
        )
    )
    if key not in cache:
        cache.clear()
        cache[key] = load_run_data(config)
    return cache[key]
