"""What a run writes about itself, composed from its config: the writer's side of
:mod:`dml_bench.store.records` (which owns the format; the reader parses the same classes).

``config.json`` is written once when a run starts and holds everything a report needs, so that a
report never consults the code that trained the run; ``summary.json`` is written when it ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dml_bench.config import to_dict
from dml_bench.data import DATASETS
from dml_bench.methods import METHODS
from dml_bench.methods.code import method_code
from dml_bench.store.env import environment_record
from dml_bench.store.records import (
    BOOKKEEPING_COLUMNS,
    CONFIG_FILE,
    ENV_FILE,
    SUMMARY_FILE,
    RunRecord,
    SummaryRecord,
    sampler_name,
    setup_of,
)
from dml_bench.store.write import RunFolder
from dml_bench.train.config import RunConfig, changed_options, setup_field_names
from dml_bench.train.data import RunData, resolve_trunk


def method_origin(method: str) -> dict[str, str]:
    origin = METHODS.origin(method)
    return {"distribution": origin.distribution, "version": origin.version}


def dataset_origin(dataset: str) -> dict[str, str]:
    origin = DATASETS.origin(dataset)
    return {"distribution": origin.distribution, "version": origin.version}


def code_record(config: RunConfig) -> dict[str, Any]:
    """The method's code identity; its hash as planning put it into the run id (the source is
    read again only for a config built without planning)."""
    code = method_code(config.method).to_json()
    return code | ({"source_hash": config.method_source_hash} if config.method_source_hash else {})


def run_record(config: RunConfig, run_id: str, data: RunData) -> RunRecord:
    """The ``config.json`` of a run: its config, and what the report reads (family and report
    roles as the method's spec declares them, sampler, setup, swept values, changed options)."""
    spec = METHODS.get(config.method)
    flat = to_dict(config)
    method_config = to_dict(config.method_config)
    return RunRecord(
        run_id=run_id,
        method=config.method,
        variant=config.variant or config.method,
        dataset=config.dataset,
        seed=config.seed,
        family=spec.family,
        sampler=sampler_name(spec.batch_needs(config.method_config).m_per_class),
        method_config=method_config,
        dataset_config=flat["dataset_config"],
        setup=run_setup(config, flat),
        swept={name: method_config[name] for name in config.swept_fields},
        options_changed=changed_options(config),
        proxy_count_field=spec.proxy_count_field,
        proxy_assignment=spec.proxy_assignment,
        method_code=code_record(config),
        config=flat,
        extra={
            "trunk_resolved": resolve_trunk(config, data.spec),
            "num_train_classes": len(data.train.classes),
            "num_train_images": len(data.train),
            "num_test_classes": len(data.test.classes),
            "num_test_images": len(data.test),
            "num_val_classes": len(data.val.classes) if data.val is not None else 0,
            "prepared_caches": list(data.prepared),
            "method_origin": method_origin(config.method),
            "dataset_origin": dataset_origin(config.dataset),
        },
    )


def run_setup(config: RunConfig, flat: dict[str, Any]) -> dict[str, Any]:
    """The setup of a run; a tuned run's tuning source is labelled by study and trial."""
    setup = setup_of(flat, setup_field_names())
    if config.tuning is not None:
        setup["tuning"] = f"{config.tuning.study}#{config.tuning.trial}"
    return setup


def write_run_records(
    config: RunConfig, folder: RunFolder, data: RunData, device: torch.device
) -> None:
    """config.json, then env.json, each written once: a run killed between the two writes gets
    its env.json when it resumes (the folder counts as resumable once config.json exists)."""
    if not (folder.path / CONFIG_FILE).exists():
        folder.write_json(CONFIG_FILE, run_record(config, folder.run_id, data).to_json())
    if not (folder.path / ENV_FILE).exists():
        folder.write_json(
            ENV_FILE,
            environment_record(
                device, method_origin(config.method), dataset_origin(config.dataset)
            ),
        )


def summary_record(
    config: RunConfig, run_id: str, rows: list[dict[str, Any]], train_seconds: float
) -> SummaryRecord:
    """The ``summary.json`` of a completed run: final and best (by Recall@1) metrics."""
    metrics = [k for k in rows[-1] if k not in BOOKKEEPING_COLUMNS or k == "train_loss"]
    best_index = int(np.nanargmax([r.get("recall@1", float("nan")) for r in rows]))
    return SummaryRecord(
        run_id=run_id,
        method=config.method,
        variant=config.variant or config.method,
        dataset=config.dataset,
        seed=config.seed,
        steps=int(rows[-1]["step"]),
        train_seconds=train_seconds,
        final={k: rows[-1].get(k) for k in metrics},
        best={k: rows[best_index].get(k) for k in metrics},
        best_step=int(rows[best_index]["step"]),
    )


def write_summary(
    config: RunConfig, folder: RunFolder, rows: list[dict[str, Any]], train_seconds: float
) -> None:
    folder.write_json(
        SUMMARY_FILE, summary_record(config, folder.run_id, rows, train_seconds).to_json()
    )
