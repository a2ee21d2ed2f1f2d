"""``dml-bench run --tuned``: each method at its study's best parameters.

The run trains on *all* train classes with the run's own seeds and options (steps included), at
the best trial's parameters; its config records the study, trial and validation score
(:class:`~dml_bench.tune.record.TuningSource`), which also makes its run id differ from an untuned
run's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dml_bench.errors import ConfigError
from dml_bench.train.config import RunConfig
from dml_bench.tune.adapter import trial_config
from dml_bench.tune.record import TuningSource, read_studies
from dml_bench.tune.storage import TUNING_FOLDER

logger = logging.getLogger(__name__)


def apply_tuning(
    configs: Sequence[RunConfig], results_dir: Path, study: str | None
) -> list[RunConfig]:
    records = read_studies(results_dir)
    if study is not None and not any(r["group"] == study for r in records):
        known = ", ".join(sorted(r["group"] for r in records)) or "none"
        raise ConfigError(
            f"--study {study!r}: no such study under {Path(results_dir) / TUNING_FOLDER} "
            f"(studies there: {known}). Run `dml-bench tune --study {study} ...` first, or name "
            "one of those."
        )
    return [_tuned(config, records, study) for config in configs]


def _tuned(config: RunConfig, records: list[dict[str, Any]], study: str | None) -> RunConfig:
    if config.variant != config.method:
        raise ConfigError(
            f"--tuned trains {config.method} at its study's best parameters, so it cannot sweep "
            f"them ({config.variant}). Drop the --set {config.method}.FIELD=a,b sweep."
        )
    found = [
        r
        for r in records
        if r.get("dataset") == config.dataset
        and config.method in r.get("methods", {})
        and r["methods"][config.method].get("best") is not None
        and (study is None or r["group"] == study)
    ]
    if not found:
        where = f"study {study!r}" if study else f"any study on {config.dataset}"
        raise ConfigError(
            f"--tuned: {where} has no finished trial of {config.method!r}. Tune it first: "
            f"`dml-bench tune --methods {config.method} --dataset {config.dataset} --trials N`"
            + (f" --study {study}" if study else "")
            + ", or drop --tuned."
        )
    if len(found) > 1:
        raise ConfigError(
            f"--tuned: several studies tuned {config.method!r} on {config.dataset} "
            f"({', '.join(r['group'] for r in found)}). Name one with --study NAME."
        )
    record = found[0]
    method = record["methods"][config.method]
    best = method["best"]
    budget = record["budget"]
    if budget.get("steps") != config.steps:
        logger.info(
            "%s: tuned with %s steps per trial, trained now for %d steps",
            config.method,
            budget.get("steps"),
            config.steps,
        )
    tuned = trial_config(config, best["params"])
    source = TuningSource(
        study=record["group"],
        trial=int(best["trial"]),
        val_score=float(best["value"]),
        metric=str(budget.get("metric")),
        budget=str(record.get("budget_text")),
        storage=str(record.get("storage")),
    )
    return dataclasses.replace(tuned, tuning=source)
