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

logger = logging.getLogger(__name__)

#: The folder ``dml-bench report`` writes inside a results directory; it is not a run.
REPORT_FOLDER = "report"

#: metrics.csv columns that describe the row rather than measure the embedding.
BOOKKEEPING_COLUMNS = ("step", "epoch", "elapsed_s", "eval_s", "train_loss")

#: Files a finished run must have for a report to use it.
REQUIRED_FILES = ("config.json", "status.json", "metrics.csv", "summary.json")

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
    the method config flattened as ``cfg.<field>``, and the final metrics (the last row of the
    run's metrics.csv). ``curves``: one row per evaluation of every run, with the run's key
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
            logger.info("Skipping run %s: %s", folder.name, exc)
            skipped.append((folder.name, str(exc)))
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
        if p.is_dir() and p.name != REPORT_FOLDER and not p.name.startswith(".")
    )
    if not folders:
        raise ResultsNotFoundError(f"The results directory {results_dir} holds no runs. {hint}")
    return folders


def read_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """One run's table row and its curve; raise :class:`UnreadableRunError` with the reason."""
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    status = _read_json(run_dir / "status.json") if "status.json" not in missing else {}
    state = status.get("status")
    if state is not None and state != "completed":
        reason = f"status {state}"
        if status.get("reason"):
            reason += f" ({status['reason']})"
        raise UnreadableRunError(reason)
    if missing:
        raise UnreadableRunError(f"missing {', '.join(missing)}")
    config = _read_json(run_dir / "config.json")
    summary = _read_json(run_dir / "summary.json")
    keys = _run_keys(run_dir.name, config)
    curve = _read_metrics(run_dir / "metrics.csv")
    final = curve.iloc[-1]
    row: dict[str, Any] = {**keys, "status": "completed"}
    row["steps"] = int(final["step"])
    row["train_seconds"] = _as_float(summary.get("train_seconds", final.get("elapsed_s")))
    row["best_step"] = _as_float(summary.get("best_step"))
    row["setup"] = json.dumps(run_setup(config), sort_keys=True, default=str)
    for name, value in _flat_config(config.get("method_config", {})).items():
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
    path = Path(run_dir) / "retrievals.npz"
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


def _run_keys(folder: str, config: dict[str, Any]) -> dict[str, Any]:
    for required in ("method", "dataset", "seed"):
        if required not in config:
            raise UnreadableRunError(f"config.json lacks {required!r}")
    method = str(config["method"])
    method_config = config.get("method_config") or {}
    if not isinstance(method_config, dict):
        raise UnreadableRunError("config.json: method_config is not an object")
    try:
        seed = int(config["seed"])
    except (TypeError, ValueError):
        raise UnreadableRunError(
            f"config.json: seed {config['seed']!r} is not an integer"
        ) from None
    return {
        "run_id": str(config.get("run_id", folder)),
        "method": method,
        "variant": str(config.get("variant") or method),
        "dataset": str(config["dataset"]),
        "seed": seed,
        "sampler": str(config.get("sampler") or _sampler_from(method_config)),
        "family": _family(method, config, method_config),
    }


#: config.json keys that are not run options compared across runs of one variant: the run's
#: identity (method, dataset, seed), the method's own config (already in the variant's name) and
#: labels.
_NOT_SETUP = frozenset({"method", "dataset", "seed", "method_config", "dataset_config"})


def run_setup(config: dict[str, Any]) -> dict[str, Any]:
    """The run options and dataset parameters of a run that can change its result.

    Two runs of one method variant that differ here (another learning rate, evaluation interval,
    dataset parameter, ...) measure different things and must not be averaged together; see
    :func:`dml_bench.report.tables.setup_labels`. Execution options (device, workers, paths) are left out: they do not
    change what a run computes.
    """
    from dml_bench.train.config import EXECUTION_FIELDS, run_field_names

    fields = set(run_field_names()) - EXECUTION_FIELDS - _NOT_SETUP
    setup = {k: config[k] for k in sorted(fields) if k in config}
    dataset_config = config.get("dataset_config") or {}
    if isinstance(dataset_config, dict):
        setup |= {f"dataset.{k}": v for k, v in _flat_config(dataset_config).items()}
    return setup


def _sampler_from(method_config: dict[str, Any]) -> str:
    m = method_config.get("m_per_class")
    return "random" if m is None else f"m_per_class:{m}"


def _family(method: str, config: dict[str, Any], method_config: dict[str, Any]) -> str:
    """``proxy`` or ``pair``: recorded if the run says so, else inferred from the method name."""
    for source in (config, method_config):
        value = source.get("family")
        if value in ("proxy", "pair"):
            return str(value)
    return "proxy" if method.startswith("proxy") else "pair"


def _flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_config(value, prefix=f"{name}."))
        elif isinstance(value, list):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = value
    return flat


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
