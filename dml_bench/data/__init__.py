"""The dataset registry: the embedded default, the paper's three datasets, and plugins."""

from __future__ import annotations

from dml_bench.data.base import (
    BatchedDataset,
    DataRequest,
    DatasetConfig,
    DatasetSpec,
    DMLDataset,
    HasThumbnails,
    Located,
    PixelSource,
    PreparedLookup,
    assert_class_disjoint,
    default_data_root,
    validate_dataset_spec,
)
from dml_bench.plugins import DATASETS_GROUP, registry_loader
from dml_bench.registry import Registry

BUILTIN_DATASETS = ("hershey", "cub200", "cars196", "sop", "folder", "csv")


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    loader=registry_loader(__name__, BUILTIN_DATASETS, DATASETS_GROUP, DatasetSpec),
    validate=validate_dataset_spec,
)

__all__ = [
    "DATASETS",
    "BatchedDataset",
    "HasThumbnails",
    "PixelSource",
    "PreparedLookup",
    "DataRequest",
    "DatasetConfig",
    "DatasetSpec",
    "DMLDataset",
    "Located",
    "assert_class_disjoint",
    "default_data_root",
]
