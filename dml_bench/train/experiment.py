"""From a request (methods x seeds x sweeps on one dataset) to recorded runs.

:func:`plan_runs` turns what the user asked for into fully resolved :class:`RunConfig` objects, with
every error found before any training starts (unknown names, bad values, impossible batches);
:func:`run_experiment` trains them one after another, skipping completed runs, resuming unfinished
ones, and recording a failed run as failed while the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dml_bench.config import build_config, field_names, to_dict
from dml_bench.data import DATASETS
from dml_bench.errors import ConfigError, UserError
from dml_bench.methods import METHODS
from dml_bench.store.env import environment_record
from dml_bench.store.write import RunFolder, claim_run, ensure_writable_dir, read_status
from dml_bench.train.checkpoint import CHECKPOINT, CheckpointRefusedError, check_checkpoint
from dml_bench.train.config import RunConfig, preset_values, run_field_names
from dml_bench.train.data import RunData, load_run_data, resolve_trunk
from dml_bench.train.device import resolve_device
from dml_bench.train.loop import ProgressFactory, train_run
from dml_bench.train.sampling import BatchPlan

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


def split_dataset_name(name: str) -> tuple[str, dict[str, Any]]:
    """``folder:PATH`` / ``csv:FILE`` name a no-code dataset and its path."""
    if ":" in name:
        kind, _, path = name.partition(":")
        if not path:
            raise ConfigError(
                f"--dataset {name!r} needs a path after the colon, e.g. {kind}:/data/x."
            )
        return kind, {"path": path}
    return name, {}


def plan_runs(request: ExperimentRequest) -> list[RunConfig]:
    """Resolve the request into run configs; raises a UserError for anything invalid."""
    preset = preset_values(request.preset) if request.preset else {"run": {}, "methods": {}}
    dataset_name, dataset_extra = split_dataset_name(request.dataset)
    dataset_spec = DATASETS.get(dataset_name)
    dataset_config = dataset_spec.make_config({**dataset_extra, **dict(request.dataset_params)})
    unknown = sorted(set(request.method_params) - set(request.methods))
    if unknown:
        raise ConfigError(
            f"--set names method {unknown[0]!r}, which is not among the methods of this run "
            f"({', '.join(request.methods)}). Add it to --methods or fix the name."
        )
    base_values = {**preset["run"], **dict(request.run_params)}
    check_run_options(base_values)
    configs = []
    for seed in request.seeds:
        for method in request.methods:
            for method_config, variant in method_variants(method, request, preset["methods"]):
                values = {
                    **base_values,
                    "method": method,
                    "dataset": dataset_name,
                    "seed": seed,
                    "method_config": method_config,
                    "dataset_config": dataset_config,
                    "variant": variant,
                    "preset": request.preset or "",
                }
                config = build_config(RunConfig, values, "the run")
                check_run(config)
                configs.append(config)
    return configs


#: RunConfig fields that a command sets through their own flag (or not at all), never as a run
#: option: a value given for them in ``--set`` or ``[run]`` would be silently replaced.
OWN_FLAG = {"method": "methods", "dataset": "dataset", "seed": "seeds", "preset": "preset"}
NOT_SETTABLE = frozenset({"method_config", "dataset_config", "variant", "notes"})


def settable_run_options() -> list[str]:
    return [n for n in run_field_names() if n not in OWN_FLAG and n not in NOT_SETTABLE]


def check_run_options(values: Mapping[str, Any]) -> None:
    """Reject run options that do not exist or that this way of setting would ignore."""
    for key in sorted(values):
        if key in OWN_FLAG:
            own = OWN_FLAG[key]
            raise ConfigError(
                f"{key!r} cannot be set as a run option (--set {key}=...); use --{own} on the "
                f"command line or `{own} = ...` in the [run] table of --config."
            )
        if key in NOT_SETTABLE:
            raise ConfigError(
                f"{key!r} is filled in by dml-bench and cannot be set. Set method parameters with "
                "--set METHOD.FIELD=v and dataset parameters with --set dataset.FIELD=v."
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
) -> list[tuple[Any, str]]:
    spec = METHODS.get(method)
    fields = field_names(spec.config_cls)
    preset = {k: v for k, v in preset_methods.items() if k in fields}
    swept = dict(request.method_params.get(method, {}))
    keys = sorted(swept)
    out = []
    for combo in itertools.product(*(list(swept[k]) for k in keys)):
        values = {**preset, **dict(zip(keys, combo, strict=True))}
        config = spec.make_config(values)
        label = ",".join(f"{k}={getattr(config, k)}" for k in keys)
        out.append((config, f"{method}[{label}]" if label else method))
    return out


def check_run(config: RunConfig) -> None:
    """Checks that need the method and dataset together (batch composition, trunk name), and the
    device, so that a command asking for a GPU it cannot have fails before it skips or trains."""
    resolve_device(config.device)
    spec = METHODS.get(config.method)
    spec.batch_needs(config.method_config).check_batch_size(config.batch_size, config.method)
    resolve_trunk(config, DATASETS.get(config.dataset))


@dataclass
class RunOutcome:
    run_id: str
    variant: str
    seed: int
    status: str  # completed | failed | skipped
    reason: str | None = None
    final: dict[str, Any] = field(default_factory=dict)


def run_experiment(
    configs: Sequence[RunConfig],
    results_dir: Path,
    *,
    rerun: bool = False,
    progress: ProgressFactory | None = None,
) -> list[RunOutcome]:
    """Train ``configs`` one after another into ``results_dir``.

    Every check that needs the data (device, dataset files, batch composition against the train
    split) runs for all runs still to train *before* the first run folder is claimed, so bad input
    leaves the results directory exactly as it was.
    """
    ensure_writable_dir(results_dir)
    data_cache: dict[str, RunData] = {}
    pending = [c for c in configs if rerun or not _finished(results_dir / c.run_id())]
    if not rerun:  # --rerun trains in new folders and loads no checkpoint
        for config in pending:
            check_checkpoint(results_dir / config.run_id() / CHECKPOINT)
    preflight(pending, data_cache)
    outcomes: list[RunOutcome] = []
    for config in configs:
        claim = claim_run(results_dir, config.run_id(), rerun=rerun)
        if claim.folder is None:
            logger.info("skip %s: %s", config.run_id(), claim.skip_reason)
            outcomes.append(
                RunOutcome(
                    config.run_id(), config.variant, config.seed, "skipped", claim.skip_reason
                )
            )
            continue
        outcomes.append(_train_claimed(config, claim.folder, data_cache, progress))
    return outcomes


def _train_claimed(
    config: RunConfig,
    folder: RunFolder,
    data_cache: dict[str, RunData],
    progress: ProgressFactory | None,
) -> RunOutcome:
    """Train one claimed run; a failure is recorded in its folder and returned, not raised."""
    try:
        check_checkpoint(folder.path / CHECKPOINT)  # planted after the preflight: still refused
        device = resolve_device(config.device)
        data = _cached_data(config, data_cache)
        write_run_records(config, folder, data, device)
        logger.info("%s %s on %s", "resume" if folder.resumed else "train", folder.run_id, device)
        result = train_run(config, data, folder, device, progress)
        final = result.rows[-1] if result.rows else {}
        return RunOutcome(
            folder.run_id, config.variant, config.seed, result.status, result.reason, final
        )
    except KeyboardInterrupt:
        _forget_if_empty(folder.path)
        raise
    except CheckpointRefusedError:  # the folder holds a file nobody should load: change nothing
        raise
    except UserError as exc:  # e.g. a corrupt image met while training: fixable, so resumable
        if not _forget_if_empty(folder.path):
            folder.write_status("interrupted", _last_step(folder.path), f"stopped: {exc}")
        raise
    except Exception as exc:  # one broken run must not take the others down
        reason = f"{type(exc).__name__}: {exc}"
        folder.write_status("failed", _last_step(folder.path), reason)
        logger.error("run %s failed: %s", folder.run_id, reason)
        logger.debug("traceback of %s", folder.run_id, exc_info=True)
        return RunOutcome(folder.run_id, config.variant, config.seed, "failed", reason)
    finally:
        folder.release()


def write_run_records(
    config: RunConfig, folder: RunFolder, data: RunData, device: torch.device
) -> None:
    """config.json, then env.json, each written once: a run killed between the two writes gets
    its env.json when it resumes (the folder counts as resumable once config.json exists)."""
    if not (folder.path / "config.json").exists():
        folder.write_json("config.json", run_record(config, folder.run_id, data))
    if not (folder.path / "env.json").exists():
        folder.write_json(
            "env.json",
            environment_record(
                device, method_origin(config.method), dataset_origin(config.dataset)
            ),
        )


def preflight(configs: Sequence[RunConfig], data_cache: dict[str, RunData]) -> None:
    """Raise the UserError a run would meet at start-up (no GPU, missing data files or broken
    listings, a batch the train split cannot fill) before any run folder is touched. Images are
    decoded only when read: a corrupt image stops its run later, recorded as interrupted."""
    for config in configs:
        resolve_device(config.device)
        data = _cached_data(config, data_cache)
        needs = METHODS.get(config.method).batch_needs(config.method_config)
        BatchPlan(data.train.labels, config.batch_size, config.seed, needs.m_per_class)


def _finished(path: Path) -> bool:
    """A completed or failed run is skipped without ``--rerun``, so it needs no preflight."""
    return read_status(path) in ("completed", "failed")


def _last_step(path: Path) -> int:
    try:
        return int(json.loads((path / "status.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _forget_if_empty(path: Path) -> bool:
    """A run folder claimed but never written (e.g. the data was missing) is removed again;
    returns whether it was (``False``: the folder holds a run and stays).

    Best effort: it must never hide the error being raised, e.g. when another process has just
    claimed the folder (it re-creates ``lock``, so the rmdir fails and the folder stays theirs).
    """
    if (path / "config.json").exists():
        return False
    with contextlib.suppress(OSError):
        (path / "lock").unlink(missing_ok=True)
        path.rmdir()
    return True


def _cached_data(config: RunConfig, cache: dict[str, RunData]) -> RunData:
    key = repr(
        (
            config.dataset,
            to_dict(config.dataset_config),
            config.val_classes,
            config.seed if config.val_classes else None,
            config.resize,
            config.crop,
            config.trunk,
            config.data_root,
            config.download,
            config.prepared,
        )
    )
    if key not in cache:
        cache.clear()
        cache[key] = load_run_data(config)
    return cache[key]


def method_origin(method: str) -> dict[str, str]:
    origin = METHODS.origin(method)
    return {"distribution": origin.distribution, "version": origin.version}


def dataset_origin(dataset: str) -> dict[str, str]:
    origin = DATASETS.origin(dataset)
    return {"distribution": origin.distribution, "version": origin.version}


def run_record(config: RunConfig, run_id: str, data: RunData) -> dict[str, Any]:
    spec = METHODS.get(config.method)
    needs = spec.batch_needs(config.method_config)
    record = to_dict(config)
    record.update(
        {
            "run_id": run_id,
            "variant": config.variant or config.method,
            "family": spec.family,
            "sampler": "random"
            if needs.m_per_class is None
            else f"m_per_class:{needs.m_per_class}",
            "trunk_resolved": resolve_trunk(config, data.spec),
            "num_train_classes": len(data.train.classes),
            "num_train_images": len(data.train),
            "num_test_classes": len(data.test.classes),
            "num_test_images": len(data.test),
            "num_val_classes": len(data.val.classes) if data.val is not None else 0,
            "prepared_caches": list(data.prepared),
            "method_origin": method_origin(config.method),
            "dataset_origin": dataset_origin(config.dataset),
        }
    )
    return record


def describe_fields(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
