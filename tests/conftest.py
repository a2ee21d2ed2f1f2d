"""Shared fixtures: small fake dataset trees in each official layout (see dml_bench.data.fakes).

Each fixture builds a fresh tree under the test's ``tmp_path`` and returns what a user would pass
to dml-bench: the data root for CUB/Cars/SOP, the folder for ``folder``, the file for ``csv``.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per test process: with pytest-xdist's workers (and the subprocesses tests
# start) sharing two cores, more threads oversubscribe the CPU and spin-wait, which made small
# tensor operations hundreds of times slower. Subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest

from dml_bench.data import fakes


def pytest_configure(config: pytest.Config) -> None:
    """With ``-n N``, tests marked ``xdist_group(NAME)`` run in one worker (the Ray tests share
    one test cluster): pytest-xdist's ``loadgroup`` distribution, which is ``load`` for all
    other tests."""
    if getattr(config.option, "dist", None) == "load":
        config.option.dist = "loadgroup"


@pytest.fixture
def fake_cub200_root(tmp_path: Path) -> Path:
    return fakes.make_cub200_tree(tmp_path / "data")


@pytest.fixture
def fake_cars196_root(tmp_path: Path) -> Path:
    return fakes.make_cars196_tree(tmp_path / "data")


@pytest.fixture
def fake_sop_root(tmp_path: Path) -> Path:
    return fakes.make_sop_tree(tmp_path / "data")


@pytest.fixture
def fake_image_folder(tmp_path: Path) -> Path:
    return fakes.make_folder_tree(tmp_path / "folder")


@pytest.fixture
def fake_csv_file(tmp_path: Path) -> Path:
    return fakes.make_csv_tree(tmp_path / "csv")


@pytest.fixture
def fake_csv_file_with_split(tmp_path: Path) -> Path:
    return fakes.make_csv_tree(tmp_path / "csv_split", with_split=True)


@pytest.fixture
def hershey_tiny_config() -> dict[str, object]:
    """Dataset values for a Hershey run that renders in well under a second."""
    return {"max_classes": 8, "images_per_class": 4, "image_size": 16}
