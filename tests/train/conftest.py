from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dml_bench.train import ExperimentRequest, plan_runs, run_experiment

TINY_HERSHEY = {"max_classes": 24, "images_per_class": 4, "image_size": 16}
TINY_RUN = {
    "steps": 6,
    "eval_every": 3,
    "batch_size": 16,
    "embedding_size": 8,
    "checkpoint_every": 3,
    "diagnostic_classes": 4,
    "diagnostic_triplets": 50,
}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def tiny_request(
    data_root: Path, methods: tuple[str, ...] = ("proxy_nca",), **run: Any
) -> ExperimentRequest:
    return ExperimentRequest(
        methods=methods,
        run_params={**TINY_RUN, "data_root": str(data_root), **run},
        dataset_params=TINY_HERSHEY,
    )


def run_tiny(results: Path, data_root: Path, methods: tuple[str, ...] = ("proxy_nca",), **run: Any):
    return run_experiment(plan_runs(tiny_request(data_root, methods, **run)), results)
