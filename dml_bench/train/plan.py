"""Planning: from a request (methods x seeds x sweeps on one dataset) to resolved run configs.

:func:`plan_runs` turns what the user asked for into fully resolved :class:`RunConfig` objects,
with every error found before any training starts (unknown names, bad values, impossible batches).
Nothing here trains or writes; :mod:`dml_bench.train.experiment` runs the plan. Messages speak of
the request's fields and run options; how a front end spells them (flags, config files) is the
front end's business (:mod:`dml_bench.cli.run_options`).
"""

from __future__ import annotations

import difflib
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dml_bench.config import build_config, field_names
from dml_bench.data import DATASETS
from dml_bench.errors import ConfigError
from dml_bench.methods import METHODS
from dml_bench.methods.code import method_code
from dml_bench.store.records import variant_label
from dml_bench.train.auto import choose as choose_auto
from dml_bench.train.config import RunConfig, preset_values, run_field_names
from dml_bench.train.data import resolve_trunk
from dml_bench.train.device import resolve_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentRequest:
    """What the user asked for; values may still be strings from the command line.

    ``method_params[method][field]`` and ``dataset_params[field]`` hold lists of values: more than
    one value is a sweep, and every combination becomes its own run.
    """

    methods: tuple[str, ...]
    dataset: str = "hershey"
    seeds: tuple[int, ...] = (0,)
    run_params: Mapping[str, Any] = field(default_factory=dict)
    method_params: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None


#: RunConfig fields a request sets through its own field (the value: that field's name), never
#: as a run option: a value given for them among the run options would be silently replaced.
OWN_FIELD = {"method": "methods", "dataset": "dataset", "seed": "seeds", "preset": "preset"}
#: RunConfig fields that planning fills in.
NOT_SETTABLE = frozenset(
    {
        "method_config",
        "dataset_config",
        "variant",
        "swept_fields",
        "method_source_hash",
        "notes",
        "tuning",
    }
)


def split_dataset_name(name: str) -> tuple[str, dict[str, Any]]:
    """``folder:PATH`` / ``csv:FILE`` name a no-code dataset and its path: ``(kind, {"path": PATH})``;
    any other name is a registered dataset: ``(name, {})``."""
    if ":" in name:
        kind, _, path = name.partition(":")
        if not path:
            raise ConfigError(
                f"The dataset name {name!r} needs a path after the colon, e.g. {kind}:/data/x."
            )
        return kind, {"path": path}
    return name, {}


def plan_runs(request: ExperimentRequest, *, device_here: bool = True) -> list[RunConfig]:
    """Resolve the request into run configs; raises a UserError for anything invalid.

    ``device_here=False``: the runs train on other machines (a Ray cluster,
    :mod:`dml_bench.execute`), so this machine's devices are not checked; the executor checks the
    cluster's instead."""
    preset = preset_values(request.preset) if request.preset else {"run": {}, "methods": {}}
    dataset_name, dataset_extra = split_dataset_name(request.dataset)
    dataset_spec = DATASETS.get(dataset_name)
    dataset_config = dataset_spec.make_config({**dataset_extra, **dict(request.dataset_params)})
    unknown = sorted(set(request.method_params) - set(request.methods))
    if unknown:
        raise ConfigError(
            f"Parameters are set for method {unknown[0]!r}, which is not among the methods "
            f"requested ({', '.join(request.methods)}). Request the method or fix the name."
        )
    base_values = {**preset["run"], **dict(request.run_params)}
    check_run_options(base_values)
    auto = choose_auto(base_values, dataset_spec, dataset_config)
    if auto.reason:
        logger.info("%s", auto.reason)
    base_values.update(auto.values)
    configs = []
    codes = {method: method_code(method).source_hash for method in request.methods}
    for seed in request.seeds:
        for method in request.methods:
            for method_config, swept in method_variants(method, request, preset["methods"]):
                values = {
                    **base_values,
                    "method": method,
                    "dataset": dataset_name,
                    "seed": seed,
                    "method_config": method_config,
                    "dataset_config": dataset_config,
                    "variant": variant_label(method, swept),
                    "swept_fields": tuple(sorted(swept)),
                    "method_source_hash": codes[method],
                    "preset": request.preset or "",
                }
                config = build_config(RunConfig, values, "the run")
                check_run(config, device_here=device_here)
                configs.append(config)
    return configs


def settable_run_options() -> list[str]:
    """The RunConfig fields that may be given as run options."""
    return [n for n in run_field_names() if n not in OWN_FIELD and n not in NOT_SETTABLE]


def check_run_options(values: Mapping[str, Any]) -> None:
    """Reject run options that do not exist or that a request sets some other way."""
    for key in sorted(values):
        if key in OWN_FIELD:
            raise ConfigError(
                f"{key!r} is not a run option: a request sets it through its "
                f"{OWN_FIELD[key]!r} field."
            )
        if key in NOT_SETTABLE:
            raise ConfigError(
                f"{key!r} is filled in by dml-bench and cannot be set. Set method parameters and "
                "dataset parameters in their own tables."
            )
        if key not in run_field_names():
            close = difflib.get_close_matches(key, settable_run_options(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown run option {key!r}.{hint} Valid run options are: "
                f"{', '.join(settable_run_options())}."
            )


def method_variants(
    method: str, request: ExperimentRequest, preset_methods: Mapping[str, Any]
) -> list[tuple[Any, dict[str, Any]]]:
    """Every combination of the method's swept values: (its config, the swept fields' values).

    A field set to its default value is not swept: restating a default (``scale = 9.0``) is the
    plain method, with the plain method's label and run id, so its seeds pool with the others."""
    spec = METHODS.get(method)
    fields = field_names(spec.config_cls)
    preset = {k: v for k, v in preset_methods.items() if k in fields}
    swept = dict(request.method_params.get(method, {}))
    keys = sorted(swept)
    out = []
    for combo in itertools.product(*(list(swept[k]) for k in keys)):
        values = {**preset, **dict(zip(keys, combo, strict=True))}
        config = spec.make_config(values)
        default = spec.default_config()
        changed = {k: getattr(config, k) for k in keys if getattr(config, k) != getattr(default, k)}
        out.append((config, changed))
    return out


def check_run(config: RunConfig, *, device_here: bool = True) -> None:
    """Checks that need the method and dataset together (batch composition, trunk name), and the
    device (when the run trains here), so that a request for a GPU it cannot have fails before it
    skips or trains."""
    if device_here:
        resolve_device(config.device)
    spec = METHODS.get(config.method)
    spec.batch_needs(config.method_config).check_batch_size(config.batch_size, config.method)
    resolve_trunk(config, DATASETS.get(config.dataset))
