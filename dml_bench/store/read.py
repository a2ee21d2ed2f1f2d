"""Read run records (``results/<run_id>/``) into pandas frames for reports.

The layout is specified in ``results/README.md``. A report must never crash because one run folder
is odd: runs that are still running, were interrupted, failed, or whose files are missing or
unreadable are skipped and listed with a reason, so the user sees what was left out and why.
Reading never writes into a run folder (records are append-only; the report owns ``report/``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dml_bench.errors import UserError
from dml_bench.store.clean import NEVER_TRAINED, never_trained
from dml_bench.store.records import (
    BOOKKEEPING_COLUMNS,
    CONFIG_FILE,
    METRICS_FILE,
    REQUIRED_FILES,
    RETRIEVALS_FILE,
    STATUS_FILE,
    SUMMARY_FILE,
    RecordError,
    RunRecord,
    StatusRecord,
    SummaryRecord,
    flat_config,
)

logger = logging.getLogger(__name__)

#: The folder ``dml-bench report`` writes inside a results directory; it is not a run.
REPORT_FOLDER = "report"
#: Where ``dml-bench tune`` keeps its studies and trial folders (not runs of the report).
TUNING_FOLDER = "tuning"

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "KEY_COLUMNS",
    "REQUIRED_FILES",
    "ResultsNotFoundError",
    "RunTable",
    "UnreadableRunError",
    "load_runs",
    "read_retrievals",
    "read_run",
]

#: Columns of :attr:`RunTable.runs` that identify a run (before ``cfg.*`` and the metrics).
KEY_COLUMNS = ("run_id", "method", "variant", "dataset", "seed", "status", "sampler", "family")


class ResultsNotFoundError(UserError):
    """The results directory is missing or holds no run folders."""


class UnreadableRunError(Exception):
    """One run folder cannot be used; the message is the reason shown in the skipped list."""


@dataclass(frozen=True)
class RunTable:
    """Every usable run of a results directory, plus the runs that were left out.

    ``runs``: one row per run: :data:`KEY_COLUMNS`, ``steps``, ``train_seconds``, ``best_step``,
    ``schema`` (the record's version), ``setup`` (JSON of the result-relevant run options, see
    :class:`~dml_bench.store.records.RunRecord`), ``swept`` (JSON of the method fields the user set
    and their values, ``{}`` for a method's defaults), ``comparable`` (JSON of what runs of
    different methods must share to be compared,
    :func:`~dml_bench.store.records.comparison_key`), ``source_hash`` (the method's code hash,
    ``""`` where not recorded), ``finished`` (status.json's ``updated``), ``proxy_count_field`` and
    ``proxy_assignment`` (the method's report roles, ``None`` where not recorded), the method
    config flattened as
    ``cfg.<field>``, and the final metrics (the last row of the run's metrics.csv). ``curves``: one row per evaluation of every run, with the run's key
    columns repeated so curves can be grouped without a join. ``skipped``: (run folder name,
    reason) for every folder left out.
    """

    results_dir: Path
    runs: pd.DataFrame
    curves: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def metric_columns(self) -> list[str]:
        """All measured columns of metrics.csv (bookkeeping columns excluded), in file order."""
        return [c for c in self.curves.columns if c not in _CURVE_META_COLUMNS]

    def run_dir(self, run_id: str) -> Path:
        return self.results_dir / run_id


_CURVE_META_COLUMNS = frozenset(KEY_COLUMNS) | set(BOOKKEEPING_COLUMNS)


def load_runs(results_dir: Path) -> RunTable:
    """Read every run folder under ``results_dir``; skip (and list) those a report cannot use.

    Raises :class:`ResultsNotFoundError` when the directory does not exist or holds no run
    folders at all; a directory whose runs are all skipped returns an empty table (the caller
    decides whether that is an error, and can show why each run was skipped).
    """
    results_dir = Path(results_dir)
    folders = _run_folders(results_dir)
    rows: list[dict[str, Any]] = []
    curves: list[pd.DataFrame] = []
    skipped: list[tuple[str, str]] = []
    for folder in folders:
        try:
            row, curve = read_run(folder)
        except UnreadableRunError as exc:
            logger.debug("Skipping run %s: %s", folder.name, exc)  # the report lists it once
            skipped.append((folder.name, NEVER_TRAINED if never_trained(folder) else str(exc)))
            continue
        rows.append(row)
        curves.append(curve)
    return RunTable(
        results_dir=results_dir,
        runs=_runs_frame(rows),
        curves=_curves_frame(curves),
        skipped=skipped,
    )


def _run_folders(results_dir: Path) -> list[Path]:
    hint = (
        "Train some runs first, e.g. `dml-bench run --methods proxy_nca,triplet_semihard "
        "--seeds 0,1,2`, or point --results-dir at the folder that `dml-bench run` wrote."
    )
    if not results_dir.is_dir():
        raise ResultsNotFoundError(f"The results directory {results_dir} does not exist. {hint}")
    folders = sorted(
        p
        for p in results_dir.iterdir()
        if p.is_dir()
        and p.name not in (REPORT_FOLDER, TUNING_FOLDER)
        and not p.name.startswith(".")
    )
    if not folders:
        raise ResultsNotFoundError(f"The results directory {results_dir} holds no runs. {hint}")
    return folders


def read_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """One run's table row and its curve; raise :class:`UnreadableRunError` with the reason."""
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    try:
        status = None
        if STATUS_FILE not in missing:
            status = StatusRecord.from_json(_read_json(run_dir / STATUS_FILE))
            if status.status != "completed":
                reason = f"status {status.status}"
                if status.reason:
                    reason += f" ({status.reason})"
                raise UnreadableRunError(reason)
        if missing:
            raise UnreadableRunError(f"missing {', '.join(missing)}")
        record = RunRecord.from_json(_read_json(run_dir / CONFIG_FILE), run_dir.name)
        train_seconds, best_step = SummaryRecord.times(_read_json(run_dir / SUMMARY_FILE))
    except RecordError as exc:
        raise UnreadableRunError(str(exc)) from None
    curve = _read_metrics(run_dir / METRICS_FILE)
    final = curve.iloc[-1]
    keys = _run_keys(record)
    row: dict[str, Any] = {**keys, "status": "completed"}
    row["steps"] = int(final["step"])
    row["train_seconds"] = _as_float(
        train_seconds if train_seconds is not None else final.get("elapsed_s")
    )
    row["best_step"] = _as_float(best_step)
    row["schema"] = record.schema
    row["setup"] = json.dumps(record.setup, sort_keys=True, default=str)
    row["swept"] = json.dumps(record.swept, sort_keys=True, default=str)
    row["comparable"] = json.dumps(record.comparison_key(), sort_keys=True, default=str)
    row["source_hash"] = record.source_hash
    row["finished"] = status.updated if status is not None else ""
    row["proxy_count_field"] = record.proxy_count_field
    row["proxy_assignment"] = record.proxy_assignment
    raw_tuning = record.config.get("tuning")  # runs of `run --tuned` (dml_bench.tune.record)
    tuning: dict[str, Any] = raw_tuning if isinstance(raw_tuning, dict) else {}
    row["tuning_study"] = str(tuning.get("study") or "")
    row["tuning_budget"] = str(tuning.get("budget") or "")
    row["tuning_storage"] = str(tuning.get("storage") or "")
    for name, value in flat_config(record.method_config).items():
        row[f"cfg.{name}"] = value
    for column in curve.columns:
        if column not in BOOKKEEPING_COLUMNS:
            row[column] = _as_float(final[column])
    for key in KEY_COLUMNS:
        if key != "status":
            curve[key] = keys[key]
    return row, curve


def read_retrievals(run_dir: Path) -> dict[str, np.ndarray] | None:
    """The qualitative retrievals of a run, or ``None`` when absent or unreadable."""
    path = Path(run_dir) / RETRIEVALS_FILE
    expected = ("query_images", "neighbor_images", "query_labels", "neighbor_labels")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        logger.info("No usable retrievals in %s: %s", run_dir, exc)
        return None
    if any(k not in data for k in expected):
        logger.info("retrievals.npz in %s lacks one of %s", run_dir, expected)
        return None
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableRunError(f"unreadable {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise UnreadableRunError(f"{path.name} is not a JSON object")
    return data


def _run_keys(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "method": record.method,
        "variant": record.variant,
        "dataset": record.dataset,
        "seed": record.seed,
        "sampler": record.sampler,
        "family": record.family,
    }


def _read_metrics(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UnreadableRunError(f"unreadable metrics.csv: {exc}") from None
    if "step" not in frame.columns:
        raise UnreadableRunError("metrics.csv has no 'step' column")
    if frame.empty:
        raise UnreadableRunError("metrics.csv has no rows")
    for column in frame.columns:
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna()
        if bool(bad.any()):
            raise UnreadableRunError(f"metrics.csv: non-numeric value in column {column!r}")
        frame[column] = converted.astype(float)
    if "elapsed_s" not in frame.columns:
        frame["elapsed_s"] = np.nan
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def _as_float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "steps", "train_seconds", "best_step"])
    return frame.sort_values(["dataset", "variant", "seed", "run_id"]).reset_index(drop=True)


def _curves_frame(curves: list[pd.DataFrame]) -> pd.DataFrame:
    if not curves:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "step", "elapsed_s"])
    return pd.concat(curves, ignore_index=True, sort=False)
