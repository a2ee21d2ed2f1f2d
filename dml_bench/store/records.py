"""The run-record format: one owner for the files of a run folder (``results/README.md``).

The writer (:mod:`dml_bench.train`) builds these records and the reader (:mod:`dml_bench.store.read`)
parses them; neither spells a file's keys on its own. A run records, when it starts, everything a
report needs (its identity, the sampler, the method's declared family, the swept method fields and
their values, the result-relevant run options), so that reading never consults today's code: a
report of old runs is made from their files alone.

``schema`` travels with ``config.json``, ``summary.json``, ``status.json`` and ``env.json``.
Version 1 is the first versioned format. Records without the key are *schema 0* (written before
records were versioned, e.g. those behind ``docs/example-report``): they lack ``setup`` and
``swept``, and sometimes ``family`` and ``sampler``, which :meth:`RunRecord.from_json` then
derives from what the file holds, with the rules that applied when it was written (listed below as
data, never read from the current code).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: The version written by this code. Readers accept every version up to it.
SCHEMA_VERSION = 1

CONFIG_FILE = "config.json"
ENV_FILE = "env.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
RETRIEVALS_FILE = "retrievals.npz"

#: Files a finished run must have for a report to use it.
REQUIRED_FILES = (CONFIG_FILE, STATUS_FILE, METRICS_FILE, SUMMARY_FILE)

#: metrics.csv columns that describe the row rather than measure the embedding. ``step`` is the
#: key of a row; every other column is a metric (``recall@K``, ``nmi``, ``val_*``, diagnostics).
#: ``cpu_s`` (process CPU seconds over the training time) and ``load1`` (the machine's 1-minute
#: load average per core at the evaluation) say what conditions ``elapsed_s`` was measured under.
BOOKKEEPING_COLUMNS = ("step", "epoch", "elapsed_s", "cpu_s", "load1", "eval_s", "train_loss")

Status = Literal["running", "completed", "interrupted", "failed"]
Family = Literal["proxy", "pair"]

#: Schema 0: the run options that could change a result (RunConfig's fields then, less the
#: execution fields, labels and the run's identity). Frozen: it describes files already written.
LEGACY_SETUP_FIELDS = (
    "amp",
    "batch_size",
    "crop",
    "diagnostic_classes",
    "diagnostic_per_class",
    "diagnostic_triplets",
    "diagnostics",
    "embedding_size",
    "eval_every",
    "freeze_bn",
    "lr",
    "lr_decay",
    "lr_decay_epochs",
    "optimizer",
    "pretrained",
    "resize",
    "retrieval_k",
    "retrieval_queries",
    "steps",
    "trunk",
    "val_classes",
    "weight_decay",
)

_LABEL = re.compile(r"^[^\[\]]+\[(?P<fields>.*)\]$")


class RecordError(Exception):
    """A record file does not have the shape of its schema; the message says what is wrong."""


@dataclass(frozen=True)
class RunRecord:
    """``config.json``: what ran, written once when the run starts.

    ``config`` holds every field of the run's resolved config (``dml_bench.train.RunConfig``), flat,
    as the file does; the other fields are what a report needs, named here once:
    ``family`` as the method's spec declares it (``"proxy"`` or ``"pair"``); ``sampler``
    (``"random"`` or ``"m_per_class:<m>"``); ``setup`` the run options and dataset parameters that
    can change the result (runs of one variant that differ here must not be averaged); ``swept`` the
    method fields the user set, with their values (the variant's label is made from them);
    ``options_changed`` the run options that differ from their defaults; ``proxy_count_field`` and
    ``proxy_assignment`` the method's report roles as its spec declares them (``None`` for a method
    without them, and in records written before they were recorded); ``method_code`` what
    identifies the method's code (``distribution``, ``version``, the hashed ``modules`` and their
    ``source_hash``, see :mod:`dml_bench.methods.code`; ``{}`` in records written before it was
    recorded); ``extra`` what else the writer records (data sizes, origins, the resolved trunk,
    ...).
    """

    run_id: str
    method: str
    variant: str
    dataset: str
    seed: int
    family: Family
    sampler: str
    method_config: dict[str, Any] = field(default_factory=dict)
    dataset_config: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)
    options_changed: dict[str, Any] = field(default_factory=dict)
    proxy_count_field: str | None = None
    proxy_assignment: str | None = None
    method_code: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def source_hash(self) -> str:
        """The hash of the method's source ("" for records written before it was recorded)."""
        return str(self.method_code.get("source_hash") or "")

    def comparison_key(self) -> dict[str, Any]:
        """See :func:`comparison_key`."""
        return comparison_key(self.dataset, self.setup, self.config.get("tuning"))

    def to_json(self) -> dict[str, Any]:
        """The file's content: the flat config, then the record's own keys (which win)."""
        return {
            **self.config,
            **self.extra,
            "schema": self.schema,
            "run_id": self.run_id,
            "method": self.method,
            "variant": self.variant,
            "dataset": self.dataset,
            "seed": self.seed,
            "family": self.family,
            "sampler": self.sampler,
            "method_config": self.method_config,
            "dataset_config": self.dataset_config,
            "setup": self.setup,
            "swept": self.swept,
            "options_changed": self.options_changed,
            "proxy_count_field": self.proxy_count_field,
            "proxy_assignment": self.proxy_assignment,
            "method_code": self.method_code,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], folder: str) -> RunRecord:
        """Parse ``config.json`` of any schema; raise :class:`RecordError` when unusable."""
        schema = schema_of(data, CONFIG_FILE)
        for required in ("method", "dataset", "seed"):
            if required not in data:
                raise RecordError(f"config.json lacks {required!r}")
        method = str(data["method"])
        method_config = _object(data, "method_config")
        dataset_config = _object(data, "dataset_config")
        try:
            seed = int(data["seed"])
        except (TypeError, ValueError):
            raise RecordError(f"config.json: seed {data['seed']!r} is not an integer") from None
        variant = str(data.get("variant") or method)
        if schema == 0:
            setup = legacy_setup(data)
            swept = legacy_swept(variant, method_config)
            options: dict[str, Any] = {}
        else:
            setup, swept = _object(data, "setup"), _object(data, "swept")
            options = _object(data, "options_changed")
        return cls(
            run_id=str(data.get("run_id", folder)),
            method=method,
            variant=variant,
            dataset=str(data["dataset"]),
            seed=seed,
            family=_family(data, method, method_config),
            sampler=str(data.get("sampler") or sampler_name(method_config.get("m_per_class"))),
            method_config=method_config,
            dataset_config=dataset_config,
            setup=setup,
            swept=swept,
            options_changed=options,
            proxy_count_field=_optional_str(data, "proxy_count_field"),
            proxy_assignment=_optional_str(data, "proxy_assignment"),
            method_code=_object(data, "method_code"),
            config=dict(data),
            schema=schema,
        )


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"config.json: {key} {value!r} is not a string or null")
    return value


#: Setup fields that change what a run logs, not what it trains: runs that differ only here are
#: still compared (the diagnostics and the saved retrievals are measured beside training).
#: ``tuning`` names each method's own study and trial; its shared part is the budget.
NOT_COMPARED_FIELDS = frozenset(
    {
        "diagnostics",
        "diagnostic_classes",
        "diagnostic_per_class",
        "diagnostic_triplets",
        "retrieval_queries",
        "retrieval_k",
        "tuning",
    }
)


#: Run options a tuning study searches per method (``dml_bench.methods.space.TUNABLE_RUN_OPTIONS``,
#: repeated here so that the store imports no method code; a test keeps the two equal).
TUNED_RUN_FIELDS = frozenset({"lr", "weight_decay"})


def comparison_key(dataset: str, setup: Mapping[str, Any], tuning: Any) -> dict[str, Any]:
    """What runs of different methods must share to be compared: the one definition.

    Everything but the method and its own config: the dataset and its parameters, and every run
    option that can change a result (steps, batch size, trunk, embedding size, optimiser,
    learning rate, image sizes, evaluation schedule, ...; the ``setup`` a run records, less
    :data:`NOT_COMPARED_FIELDS`), and the tuning budget (``None`` for an untuned run; a tuned
    run records it under ``tuning.budget``). The sampler and the method's fields are the
    method's own. It lives with the record format because it is a statement about the recorded
    fields, read the same way from every schema (schema 0 records have their legacy setup).

    A tuned run's learning rate (:data:`TUNED_RUN_FIELDS`) is the method's own, like its config:
    a study chooses it per method within the one budget, as the Reality Check prescribes, so
    tuned runs of one budget are compared whatever learning rate each method's study chose.
    """
    budget = tuning.get("budget") if isinstance(tuning, Mapping) else None
    own = NOT_COMPARED_FIELDS | (TUNED_RUN_FIELDS if budget is not None else frozenset())
    key = {k: v for k, v in setup.items() if k not in own}
    return {"dataset": dataset, **key, "tuning_budget": budget}


def sampler_name(m_per_class: int | None) -> str:
    """The batch sampler a run used: ``"random"`` or ``"m_per_class:<m>"``."""
    return "random" if m_per_class is None else f"m_per_class:{m_per_class}"


def variant_label(method: str, swept: Mapping[str, Any]) -> str:
    """A method's label in reports: ``method[f=v,...]`` over the swept fields (sorted), or the
    plain method name when nothing was swept."""
    label = ",".join(f"{k}={swept[k]}" for k in sorted(swept))
    return f"{method}[{label}]" if label else method


def setup_of(config: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    """The ``setup`` of a run: ``fields`` of its config, and its dataset parameters as
    ``dataset.<name>`` (nested values flattened)."""
    setup = {k: config[k] for k in sorted(fields) if k in config}
    dataset_config = config.get("dataset_config") or {}
    if isinstance(dataset_config, dict):
        setup |= {f"dataset.{k}": v for k, v in flat_config(dataset_config).items()}
    return setup


def legacy_setup(config: Mapping[str, Any]) -> dict[str, Any]:
    """Schema 0 recorded no ``setup``; it is the schema-0 setup fields of the flat config."""
    return setup_of(config, list(LEGACY_SETUP_FIELDS))


def legacy_swept(variant: str, method_config: Mapping[str, Any]) -> dict[str, Any]:
    """Schema 0 recorded the swept fields only in the variant's label (``m[f=v,...]``); their
    values are taken from ``method_config``, which holds them typed."""
    match = _LABEL.match(variant)
    if match is None:
        return {}
    names = [part.partition("=")[0] for part in match["fields"].split(",") if "=" in part]
    return {name: method_config.get(name) for name in names}


def _family(data: Mapping[str, Any], method: str, method_config: Mapping[str, Any]) -> Family:
    for source in (data, method_config):
        value = source.get("family")
        if value == "proxy" or value == "pair":
            return value
    # Schema 0 before the family was recorded: the built-in proxy methods were the only ones and
    # all were named proxy_*; this rule describes those files, it is not applied to new runs.
    return "proxy" if method.startswith("proxy") else "pair"


@dataclass(frozen=True)
class SummaryRecord:
    """``summary.json``: written once, when a run completes."""

    run_id: str
    method: str
    variant: str
    dataset: str
    seed: int
    steps: int
    train_seconds: float
    final: dict[str, Any]
    best: dict[str, Any]
    best_step: int
    status: str = "completed"
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @staticmethod
    def times(data: Mapping[str, Any]) -> tuple[float | None, float | None]:
        """(train_seconds, best_step) of a summary of any schema; ``None`` when not recorded."""
        schema_of(data, SUMMARY_FILE)
        return _number(data.get("train_seconds")), _number(data.get("best_step"))


@dataclass(frozen=True)
class StatusRecord:
    """``status.json``: rewritten as a run moves between states."""

    status: Status
    step: int
    reason: str | None = None
    updated: str = ""
    pid: int = 0
    schema: int = SCHEMA_VERSION

    @classmethod
    def now(cls, status: Status, step: int, reason: str | None = None) -> StatusRecord:
        return cls(status, step, reason, time.strftime("%Y-%m-%dT%H:%M:%S%z"), os.getpid())

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusRecord:
        schema = schema_of(data, STATUS_FILE)
        status = data.get("status")
        if status not in ("running", "completed", "interrupted", "failed"):
            raise RecordError(f"status.json: unknown status {status!r}")
        try:
            step = int(data.get("step") or 0)
        except (TypeError, ValueError):
            raise RecordError(f"status.json: step {data.get('step')!r} is not an integer") from None
        reason = data.get("reason")
        return cls(
            status,
            step,
            None if reason is None else str(reason),
            str(data.get("updated", "")),
            int(data.get("pid") or 0),
            schema,
        )


def schema_of(data: Mapping[str, Any], name: str) -> int:
    """The schema of a record (0 when it has none); raise for one newer than this code."""
    schema = data.get("schema", 0)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        raise RecordError(f"{name}: schema {schema!r} is not a version number")
    if schema > SCHEMA_VERSION:
        raise RecordError(
            f"{name} has record schema {schema}, newer than this dml-bench reads "
            f"({SCHEMA_VERSION}); upgrade dml-bench to read it"
        )
    return schema


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts flattened to ``a.b`` keys; lists become comma-separated strings."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, prefix=f"{name}."))
        elif isinstance(value, list):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = value
    return flat


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise RecordError(f"config.json: {key} is not an object")
    return value


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
