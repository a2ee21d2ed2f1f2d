"""What ``tune --executor ray`` checks before it writes: every worker must reach the storage.
(The tuning workers on a real cluster: tests/execute/test_cluster.py.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dml_bench.execute.connect import ClusterError
from dml_bench.execute.trials import check_storage
from tests.execute.test_connect import fake_ray


def test_a_sqlite_study_needs_every_node_on_this_machine(tmp_path: Path) -> None:
    plan = SimpleNamespace(storage=f"sqlite:///{tmp_path}/studies.db")
    check_storage(fake_ray({"NodeManagerAddress": "10.0.0.1"}), plan)  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match=r"10\.0\.0\.7 cannot open.*--storage postgresql://"):
        check_storage(
            fake_ray({"NodeManagerAddress": "10.0.0.1"}, {"NodeManagerAddress": "10.0.0.7"}),
            plan,  # type: ignore[arg-type]
        )
    server = SimpleNamespace(storage="postgresql://u:p@db/x")
    check_storage(fake_ray({"NodeManagerAddress": "10.0.0.7"}), server)  # type: ignore[arg-type]
