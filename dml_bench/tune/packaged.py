"""A dataset's defaults from evidence: the winners of a study shipped with the dataset.

*A Metric Learning Reality Check* (Musgrave et al., ECCV 2020) showed that a ranking of methods at
hand-picked values is a ranking of those values. A dataset may therefore ship the record of a
``dml-bench tune`` study (``DatasetSpec.tuned_defaults``: the ``study.json`` that command writes;
docs/tuning/README.md says how the embedded glyphs' one was made), and ``dml-bench run`` trains
each method it tuned at that study's best parameters, so a newcomer's first command compares
methods with equal tuning budgets.

Rules (each one a choice the Reality Check leaves to the tool):

- **Only on the set-up the study tuned.** The winners apply when the run's set-up (dataset
  parameters, steps, batch, trunk, embedding size, ... everything but the searched values) is the
  study's. Another set-up (a preset, ``--steps 100``, a dataset parameter) trains at the methods'
  hand-picked defaults, and the log says why: values tuned for 600 steps on all glyph classes say
  nothing about another budget.
- **What the user sets wins.** ``--lr``, ``--set proxy_nca.scale=3`` or a config-file value replaces
  the tuned value of that field only; the run still records the study it took the rest from.
- **Methods the study did not tune** (plugins, the extra built-ins) keep their own defaults.
- ``--untuned`` trains every method at its hand-picked defaults.

A tuned run records its :class:`~dml_bench.tune.record.TuningSource` (storage
``packaged:FILE``), so its run id differs from an untuned run's and the report states the budget.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dml_bench.config import to_dict
from dml_bench.data import DATASETS
from dml_bench.methods import METHODS
from dml_bench.train.config import RunConfig, setup_field_names
from dml_bench.train.plan import ExperimentRequest
from dml_bench.tune.adapter import trial_config
from dml_bench.tune.plan import TRIAL_ONLY_FIELDS
from dml_bench.tune.record import TuningSource, read_record

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"


def packaged_study(dataset: str) -> tuple[Path, dict[str, Any]] | None:
    """The dataset's shipped study record and its path, if it declares one that can be read."""
    path = DATASETS.get(dataset).tuned_defaults
    if path is None:
        return None
    record = read_record(Path(path))
    if record is None or record.get("dataset") != dataset:
        logger.warning(
            "%s: the packaged study %s cannot be read; hand-picked defaults", dataset, path
        )
        return None
    return Path(path), record


def apply_packaged(configs: Sequence[RunConfig], request: ExperimentRequest) -> list[RunConfig]:
    """``configs`` with the packaged study's winners where the rules above allow them."""
    found = packaged_study(configs[0].dataset) if configs else None
    if found is None:
        return list(configs)
    path, record = found
    return [_packaged(config, request, path, record) for config in configs]


def _packaged(
    config: RunConfig, request: ExperimentRequest, path: Path, record: dict[str, Any]
) -> RunConfig:
    method = record.get("methods", {}).get(config.method) or {}
    best = method.get("best")
    if best is None:
        return config
    searched = {p.name for p in METHODS.get(config.method).search_space}
    differs = setup_differences(config, method.get("base_config", {}), searched)
    if differs:
        logger.info(
            "%s: hand-picked defaults, not the packaged study %r (tuned on another set-up: %s)",
            config.method,
            record["group"],
            ", ".join(differs),
        )
        return config
    user_set = set(request.run_params) | set(request.method_params.get(config.method, {}))
    params = {k: v for k, v in best["params"].items() if k not in user_set}
    budget = record.get("budget", {})
    source = TuningSource(
        study=str(record["group"]),
        trial=int(best["trial"]),
        val_score=float(best["value"]),
        metric=str(budget.get("metric")),
        budget=str(record.get("budget_text")),
        storage=f"{PACKAGED_PREFIX}{path.name}",
    )
    return dataclasses.replace(trial_config(config, params), tuning=source)


def setup_differences(config: RunConfig, base: dict[str, Any], searched: set[str]) -> list[str]:
    """The set-up fields (dataset parameters included) where ``config`` is not the study's base."""
    values = json.loads(json.dumps(to_dict(config)))  # tuples as the record's JSON lists
    skip = searched | TRIAL_ONLY_FIELDS
    fields = [f for f in setup_field_names() if f not in skip]
    differs = [f for f in fields if f in base and values[f] != base[f]]
    if values["dataset_config"] != base.get("dataset_config"):
        differs.append("dataset parameters")
    return differs
