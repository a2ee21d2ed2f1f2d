"""Command-line options and config files -> an :class:`~dml_bench.train.ExperimentRequest`.

Precedence, lowest first: RunConfig defaults, the preset, the TOML config file, flags and ``--set``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dml_bench.errors import ConfigError, UserError

# click option name -> RunConfig field
RUN_FLAGS = (
    "steps",
    "eval_every",
    "batch_size",
    "embedding_size",
    "lr",
    "optimizer",
    "trunk",
    "pretrained",
    "resize",
    "crop",
    "keep",
    "freeze_bn",
    "val_classes",
    "device",
    "amp",
    "num_workers",
    "checkpoint_every",
    "download",
    "prepared",
)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(
            f"Cannot read the config file {str(path)!r} ({exc.strerror or exc}). Check the path."
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"The config file {str(path)!r} is not valid TOML ({exc}). Fix the syntax; the file "
            "has tables [run], [methods.NAME] and [dataset], each a header line followed by "
            "`key = value` lines, e.g. a line `[run]`, then a line `steps = 300`."
        ) from None
    unknown = sorted(set(data) - {"run", "methods", "dataset"})
    if unknown:
        raise ConfigError(
            f"The config file {str(path)!r} has unknown top-level key(s) {', '.join(map(repr, unknown))}. "
            "Valid tables are [run], [methods.NAME] and [dataset]."
        )
    check_tables(path, data)
    return data


def check_tables(path: Path, data: Mapping[str, Any]) -> None:
    """Unknown keys are named with the file and the table they are in."""
    from dml_bench.config import field_names
    from dml_bench.methods import METHODS
    from dml_bench.train.plan import check_run_options

    def where(table: str, exc: UserError) -> ConfigError:
        return ConfigError(f"In the config file {str(path)!r}, table {table}: {exc}")

    tables = {"[run]": data.get("run", {}), "[dataset]": data.get("dataset", {})}
    methods = data.get("methods", {})
    tables |= {f"[methods.{k}]": v for k, v in methods.items()} if isinstance(methods, dict) else {}
    for table, values in tables.items():
        if not isinstance(values, dict):
            raise ConfigError(f"In {str(path)!r}, {table} must be a table of `key = value` lines.")
    try:
        check_run_options({k: v for k, v in tables["[run]"].items() if k not in _FILE_RUN_KEYS})
    except UserError as exc:
        raise where("[run]", exc) from None
    for name, values in methods.items():
        try:
            valid = field_names(METHODS.get(name).config_cls)
        except UserError as exc:
            raise where(f"[methods.{name}]", exc) from None
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise where(
                f"[methods.{name}]",
                ConfigError(
                    f"unknown key(s) {', '.join(map(repr, unknown))}; valid keys are: "
                    f"{', '.join(valid)}."
                ),
            )


#: [run] keys of a config file that are not run options (they have their own flags).
_FILE_RUN_KEYS = frozenset({"methods", "dataset", "seeds", "preset"})


def parse_setting(text: str) -> tuple[str | None, str, list[str]]:
    """``METHOD.FIELD=a,b`` -> (METHOD, FIELD, [a, b]); ``FIELD=a`` -> (None, FIELD, [a])."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {text!r} is not of the form KEY=VALUE (e.g. --set proxy_nca.scale=9, "
            "--set dataset.images_per_class=10, --set lr=0.001)."
        )
    scope, dot, name = key.strip().rpartition(".")
    values = [v.strip() for v in value.split(",")] if value.strip() else [""]
    return (scope if dot else None), name, values


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def request_from_options(options: Mapping[str, Any]) -> Any:
    from dml_bench.methods import DEFAULT_METHODS, METHODS
    from dml_bench.train import ExperimentRequest

    file = read_config_file(options["config_file"]) if options.get("config_file") else {}
    run_file = dict(file.get("run", {}))
    # A flag given as "" is an error below, not a request for the default.
    methods = _flag_or_file(options, run_file, "methods", None)
    dataset = _flag_or_file(options, run_file, "dataset", "hershey")
    seeds = _flag_or_file(options, run_file, "seeds", "0")
    preset = _flag_or_file(options, run_file, "preset", None)
    if not str(dataset).strip():
        raise ConfigError("--dataset is empty. Name a dataset (see `dml-bench datasets`).")
    for key in ("methods", "dataset", "seeds", "preset"):
        run_file.pop(key, None)

    method_names = _parse_methods(methods) if methods is not None else list(DEFAULT_METHODS)
    for name in method_names:
        METHODS.get(name)  # unknown names fail here, with the list of valid ones

    run_params: dict[str, Any] = dict(run_file)
    for flag in RUN_FLAGS:
        if options.get(flag) is not None:
            run_params[flag] = options[flag]
    if options.get("data_root") is not None:
        run_params["data_root"] = str(options["data_root"])
    if options.get("log") is not None:
        run_params["log"] = tuple(v.strip() for v in str(options["log"]).split(",") if v.strip())

    method_params: dict[str, dict[str, list[Any]]] = {
        name: {k: _as_list(v) for k, v in table.items()}
        for name, table in dict(file.get("methods", {})).items()
    }
    dataset_params: dict[str, Any] = dict(file.get("dataset", {}))
    for text in options.get("settings") or ():
        scope, name, values = parse_setting(text)
        if scope is None:
            if len(values) > 1:
                raise ConfigError(
                    f"--set {text!r}: only method parameters can be swept; run option {name!r} "
                    "takes one value."
                )
            run_params[name] = values[0]
        elif scope == "dataset":
            if len(values) > 1:
                raise ConfigError(f"--set {text!r}: dataset parameters take one value.")
            dataset_params[name] = values[0]
        else:
            METHODS.get(scope)
            method_params.setdefault(scope, {})[name] = values
    check_flag_use(run_params, method_params, method_names)
    return ExperimentRequest(
        methods=tuple(method_names),
        dataset=str(dataset),
        seeds=_parse_seeds(seeds),
        run_params=run_params,
        method_params=method_params,
        dataset_params=dataset_params,
        preset=preset,
    )


#: The flag (and [run] key) that sets each request field.
REQUEST_FLAGS = {
    "methods": "--methods",
    "dataset": "--dataset",
    "seeds": "--seeds",
    "preset": "--preset",
}


def check_flag_use(
    run_params: Mapping[str, Any],
    method_params: Mapping[str, Any],
    method_names: list[str],
) -> None:
    """Name the flag to use when a value came in the wrong way: a request field given as a run
    option (``--set seed=3``), a field dml-bench fills in, or parameters of a method not run."""
    from dml_bench.train.plan import NOT_SETTABLE, OWN_FIELD

    for key in sorted(run_params):
        if key in OWN_FIELD:
            own = OWN_FIELD[key]
            raise ConfigError(
                f"{key!r} cannot be set as a run option (--set {key}=...); use {REQUEST_FLAGS[own]} "
                f"on the command line or `{own} = ...` in the [run] table of --config."
            )
        if key in NOT_SETTABLE:
            raise ConfigError(
                f"{key!r} is filled in by dml-bench and cannot be set. Set method parameters with "
                "--set METHOD.FIELD=v and dataset parameters with --set dataset.FIELD=v."
            )
    unknown = sorted(set(method_params) - set(method_names))
    if unknown:
        raise ConfigError(
            f"--set names method {unknown[0]!r}, which is not among the methods of this run "
            f"({', '.join(method_names)}). Add it to --methods or fix the name."
        )


def _flag_or_file(
    options: Mapping[str, Any], run_file: Mapping[str, Any], key: str, default: Any
) -> Any:
    """The flag's value if it was given (even empty), else the config file's, else ``default``."""
    if options.get(key) is not None:
        return options[key]
    return run_file.get(key, default)


def _parse_methods(value: Any) -> list[str]:
    items = _as_list(value) if not isinstance(value, str) else value.split(",")
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise ConfigError("--methods is empty. Name at least one method (see `dml-bench methods`).")
    if len(set(names)) != len(names):
        raise ConfigError(f"--methods lists a method twice: {', '.join(names)}.")
    return names


def _parse_seeds(value: Any) -> tuple[int, ...]:
    items = _as_list(value) if not isinstance(value, str) else value.split(",")
    try:
        seeds = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise ConfigError(
            f"--seeds {value!r} must be comma-separated integers, e.g. --seeds 0,1,2."
        ) from None
    if not seeds:
        raise ConfigError("--seeds is empty; give at least one integer seed, e.g. --seeds 0.")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds lists a seed twice: {value!r}.")
    return seeds
