"""Experiment trackers: a run also logged to TensorBoard and/or MLflow (``--log``).

The results store stays the source of truth: trackers are outputs written beside it. The loop
calls :class:`Trackers` at four points (start, training losses, each evaluation, end); each
backend implements the small :class:`Tracker` protocol. A backend that fails (not installed,
server down, disk full) is warned about once and dropped for the rest of the run: it never stops,
slows for long, or changes a run, whose records in ``results/`` are written as without it.
Backends are imported only when asked for, so a run without ``--log`` imports neither.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

#: metrics.csv columns that describe the evaluation rather than measure the embedding.
_BOOKKEEPING = ("epoch", "elapsed_s", "eval_s")
_RETRIEVAL = re.compile(r"^(recall@\d+|nmi|p@1|r_precision|map@r)$")


Point = tuple[int, Mapping[str, float]]


class Tracker(Protocol):
    """One backend. ``metrics`` gets ``(step, {tag: value})`` points, tags like ``test/recall@1``
    or ``train/loss``, several steps at once (the losses of the last few steps)."""

    def start(self, params: Mapping[str, Any]) -> None: ...

    def metrics(self, points: Sequence[Point]) -> None: ...

    def finish(self, status: str, run_dir: Path) -> None: ...


def metric_tag(column: str) -> str:
    """The tag of a metrics.csv column: ``test/…``, ``val/…``, ``diagnostics/…`` or ``run/…``."""
    if column == "train_loss":
        return "train/mean_loss"
    if column in _BOOKKEEPING:
        return f"run/{column}"
    if column.startswith("val_"):
        return f"val/{column[4:]}"
    if _RETRIEVAL.match(column):
        return f"test/{column}"
    return f"diagnostics/{column}"


def flat_params(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """config.json flattened to ``a.b`` keys with scalar values (lists joined by commas)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_params(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(map(str, value))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = "None" if value is None else value
        else:
            out[name] = str(value)
    return out


class Trackers:
    """The trackers of one run, each guarded: a failure warns once and drops that tracker."""

    def __init__(self, trackers: Mapping[str, Tracker] | None = None) -> None:
        self._trackers = dict(trackers or {})

    def __bool__(self) -> bool:
        return bool(self._trackers)

    @property
    def names(self) -> list[str]:
        return list(self._trackers)

    def start(self, record: Mapping[str, Any]) -> None:
        params = flat_params(record)
        self._each("start", lambda t: t.start(params))

    def losses(self, first_step: int, values: Sequence[float]) -> None:
        points = [(first_step + i, {"train/loss": float(v)}) for i, v in enumerate(values)]
        self._each("log", lambda t: t.metrics(points))

    def evaluation(self, row: Mapping[str, Any]) -> None:
        values = {
            metric_tag(k): float(v)
            for k, v in row.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        self._each("log", lambda t: t.metrics([(int(row["step"]), values)]))

    def finish(self, status: str, run_dir: Path) -> None:
        self._each("finish", lambda t: t.finish(status, run_dir))

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        for name, tracker in list(self._trackers.items()):
            try:
                call(tracker)
            except Exception as exc:  # a tracker must never stop or change a run
                del self._trackers[name]
                logger.warning(
                    "%s logging failed (%s: %s) at %s; the run goes on, its records in the "
                    "results directory are complete, and nothing more is sent to %s for it.",
                    name,
                    type(exc).__name__,
                    exc,
                    what,
                    name,
                )


def open_trackers(names: Sequence[str], run_dir: Path, run_id: str) -> Trackers:
    """The trackers ``--log`` asked for; one that cannot start is warned about and left out."""
    opened: dict[str, Tracker] = {}
    for name in names:
        try:
            opened[name] = _open(name, run_dir, run_id)
        except Exception as exc:
            logger.warning(
                "%s logging is off for %s: %s. The run goes on without it.",
                name,
                run_id,
                _why(name, exc),
            )
    return Trackers(opened)


def _open(name: str, run_dir: Path, run_id: str) -> Tracker:
    if name == "tensorboard":
        from dml_bench.track.tensorboard import TensorBoardTracker

        return TensorBoardTracker(run_dir)
    if name == "mlflow":
        from dml_bench.track.mlflow import MlflowTracker

        return MlflowTracker(run_id)
    raise ValueError(f"unknown tracker {name!r}")


def _why(name: str, exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return (
            f"{exc.name or name} is not installed (pip install -c constraints.txt "
            f'"dml-bench[tracking]")'
        )
    return f"{type(exc).__name__}: {exc}"


def start_trackers(config: Any, folder: Any) -> Trackers:
    """Open and start the trackers of ``config.log`` for a claimed run folder; the params are the
    run's config.json (the config itself when there is none yet)."""
    if not config.log:
        return Trackers()
    trackers = open_trackers(config.log, folder.path, folder.run_id)
    if trackers:
        from dml_bench.config import to_dict

        path = Path(folder.path) / "config.json"
        record = json.loads(path.read_text()) if path.is_file() else to_dict(config)
        trackers.start(record)
    return trackers
