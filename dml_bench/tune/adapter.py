"""The one place tuning touches the training code: parameters -> RunConfig -> a trained fold.

:func:`trial_config` turns a trial's parameters into a :class:`RunConfig`; :func:`train_fold`
trains it on one validation fold through the ordinary loop, and hands each evaluation's validation
metrics to ``on_evaluation`` (which may raise to stop the trial, e.g. when the pruner says so).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dml_bench.config import build_config, to_dict
from dml_bench.errors import RunFailedError
from dml_bench.methods import METHODS
from dml_bench.store.write import RunFolder
from dml_bench.train.config import RunConfig
from dml_bench.train.data import RunData
from dml_bench.train.device import resolve_device
from dml_bench.train.loop import train_run

OnEvaluation = Callable[[Mapping[str, Any]], None]


def trial_config(base: RunConfig, params: Mapping[str, Any]) -> RunConfig:
    """``base`` with the method's and the run's searched values set (each checked as usual)."""
    spec = METHODS.get(base.method)
    scopes = {p.name: p.scope for p in spec.search_space}
    method_values = {k: v for k, v in params.items() if scopes.get(k) == "method"}
    run_values = {k: v for k, v in params.items() if scopes.get(k) == "run"}
    unknown = sorted(set(params) - set(scopes))
    if unknown:
        raise KeyError(f"parameters {unknown} are not in {base.method}'s search space")
    where = f"method {base.method!r}"
    method_config = build_config(
        spec.config_cls, {**to_dict(base.method_config), **method_values}, where
    )
    return dataclasses.replace(base, method_config=method_config, **run_values)


class _EvaluationFolder(RunFolder):
    """A run folder that also hands every evaluation row to a callback (the pruner's hook)."""

    on_evaluation: OnEvaluation | None = None

    def write_metrics(self, rows: Sequence[Mapping[str, Any]]) -> None:
        super().write_metrics(rows)
        if self.on_evaluation is not None and rows:
            self.on_evaluation(rows[-1])


def train_fold(
    config: RunConfig, data: RunData, folder: Path, on_evaluation: OnEvaluation, metric: str
) -> float:
    """Train ``config`` on one fold into ``folder``; the validation ``metric`` at the last step.

    ``data.test`` is the fold's validation part (see :mod:`dml_bench.tune.folds`). A run whose
    loss turns non-finite raises :class:`RunFailedError` (the trial fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    run_folder = _EvaluationFolder(path=folder, resumed=False)
    run_folder.on_evaluation = on_evaluation
    run_folder.write_json("config.json", {**to_dict(config), "tuning_fold": folder.name})
    result = train_run(config, data, run_folder, resolve_device(config.device))
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    if result.status != "completed":
        raise RunFailedError(result.reason or f"fold {folder.name} failed")
    value = result.rows[-1].get(metric)
    if value is None or not math.isfinite(float(value)):
        raise RunFailedError(f"fold {folder.name} gave no finite validation {metric}")
    return float(value)
