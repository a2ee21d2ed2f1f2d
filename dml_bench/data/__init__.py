"""The dataset registry: the embedded default, the paper's three datasets, and plugins."""

from __future__ import annotations

import importlib

from dml_bench.data.base import (
    DataRequest,
    DatasetConfig,
    DatasetSpec,
    DMLDataset,
    Located,
    assert_class_disjoint,
    default_data_root,
)
from dml_bench.registry import Registry

BUILTIN_DATASETS = ("hershey", "cub200", "cars196", "sop", "folder", "csv_file")


def _load(registry: Registry[DatasetSpec]) -> None:
    for module_name in BUILTIN_DATASETS:
        try:
            module = importlib.import_module(f"dml_bench.data.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dml_bench.data.{module_name}":
                continue  # not written yet
            raise
        registry.register(module.SPEC.name, module.SPEC)
    from dml_bench.plugins import load_plugins

    load_plugins("dml_bench.datasets", registry, DatasetSpec)


def _validate(entry: object) -> None:
    from dml_bench.data.base import validate_dataset_spec

    validate_dataset_spec(entry)


DATASETS: Registry[DatasetSpec] = Registry("dataset", loader=_load, validate=_validate)

__all__ = [
    "DATASETS",
    "DataRequest",
    "DatasetConfig",
    "DatasetSpec",
    "DMLDataset",
    "Located",
    "assert_class_disjoint",
    "default_data_root",
]
