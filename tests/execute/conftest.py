"""Fixtures of the Ray executor's tests: Ray itself, and a real two-node cluster on loopback.

Without Ray installed these tests skip, saying how to install it; in CI (``CI=true`` or
``DML_BENCH_REQUIRE_RAY=1``, which ``.ci/run`` sets after installing the ``ray`` extra) a missing
Ray fails them instead, so they never pass by not running.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from tests.execute.ray_cluster import LocalCluster, local_cluster

INSTALL = 'pip install -c constraints.txt -e ".[ray]"'


def ray_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("DML_BENCH_REQUIRE_RAY") == "1"


@pytest.fixture(scope="session")
def needs_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        message = f"Ray is not installed; install it with {INSTALL} to run the Ray tests."
        if ray_required():
            pytest.fail(message + " In CI they must run (CI=true / DML_BENCH_REQUIRE_RAY=1).")
        pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(needs_ray: None) -> Iterator[LocalCluster]:
    """A head and a worker node with one CPU each, started once per test module."""
    with local_cluster((1, 1)) as started:
        yield started
