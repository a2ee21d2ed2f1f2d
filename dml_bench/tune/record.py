"""``results/tuning/GROUP/study.json``: what a study found, for ``run --tuned`` and the report.

One owner of the format: :func:`export_study` writes it (after every ``dml-bench tune`` command,
from the study's storage, whichever database that is) and :func:`read_studies` reads it. The
storage stays the source of truth while a study runs; the record is what the results directory
keeps of it (its URL is recorded with any password masked).

Schema 2 adds, per method, ``defaults`` (what the method's hand-picked values were, whether they
were tried as the study's first trial and, if not, why; the defaults trial's number, state and
score: see :func:`dml_bench.tune.defaults.defaults_record`) and a ``defaults`` flag on every
trial. A schema-1 record (e.g. the shipped glyph study) reads as before: its methods have no
``defaults`` entry, which readers show as "not recorded".
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dml_bench.config import to_dict
from dml_bench.store.write import atomic_write_json
from dml_bench.tune.defaults import TRIAL_ATTR as DEFAULTS_TRIAL_ATTR
from dml_bench.tune.defaults import defaults_record
from dml_bench.tune.plan import StudyPlan
from dml_bench.tune.storage import TUNING_FOLDER, mask_url
from dml_bench.tune.study import count_trials, load_study

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: Record versions this code reads (1: before defaults trials; readers treat the field as absent).
READABLE_VERSIONS = frozenset({1, 2})
RECORD_FILE = "study.json"


@dataclass(frozen=True)
class TuningSource:
    """Where a tuned run's parameters come from; part of its config, so of its run id."""

    study: str
    trial: int
    val_score: float
    metric: str
    budget: str
    storage: str


def record_path(results_dir: Path, group: str) -> Path:
    return Path(results_dir) / TUNING_FOLDER / group / RECORD_FILE


def export_study(plan: StudyPlan, session: dict[str, Any]) -> Path:
    """Write the group's record; ``session`` (start, end, workers, wall_s) is appended."""
    path = record_path(plan.results_dir, plan.group)
    previous = read_record(path)
    methods = {m: _method_record(plan, m) for m in plan.methods}
    record = {
        "schema_version": SCHEMA_VERSION,
        "group": plan.group,
        "dataset": plan.dataset,
        "storage": mask_url(plan.storage),
        "budget": dataclasses.asdict(plan.budget),
        "budget_text": plan.budget.describe(),
        "methods": methods,
        "sessions": [*(previous or {}).get("sessions", []), session],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    return path


def _method_record(plan: StudyPlan, method: str) -> dict[str, Any]:
    study = load_study(plan, method)
    trials = study.get_trials(deepcopy=False)
    counts = count_trials(trials)
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    return {
        "study": plan.study_name(method),
        "counts": dataclasses.asdict(counts),
        "best": None
        if best is None
        else {"trial": best.number, "value": best.value, "params": dict(best.params)},
        "defaults": defaults_record(study.user_attrs, trials),
        "search_space": [dataclasses.asdict(p) for p in plan.search_space(method)],
        "base_config": to_dict(plan.base_config(method)),
        "trials": [
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": dict(t.params),
                "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                "duration_s": t.duration.total_seconds() if t.duration else None,
                "surplus": bool(t.user_attrs.get("surplus")),
                "defaults": bool(t.user_attrs.get(DEFAULTS_TRIAL_ATTR)),
            }
            for t in trials
        ],
    }


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_studies(results_dir: Path) -> list[dict[str, Any]]:
    """Every study record under ``results_dir/tuning``, by group name."""
    root = Path(results_dir) / TUNING_FOLDER
    if not root.is_dir():
        return []
    records = [read_record(p / RECORD_FILE) for p in sorted(root.iterdir()) if p.is_dir()]
    return [r for r in records if r is not None and r.get("schema_version") in READABLE_VERSIONS]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
