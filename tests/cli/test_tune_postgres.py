"""``dml-bench tune --workers 2 --storage postgresql://...`` against a real PostgreSQL server.

CI starts one (``.ci/start-postgres``) and exports ``DML_BENCH_TEST_POSTGRES_URL``. Elsewhere the
test skips, saying how to run it; with ``DML_BENCH_REQUIRE_POSTGRES=1`` (set by CI) it fails
instead, so the server can never be silently missing there.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest

from tests.cli.helpers import describe, invoke, shared_data_root
from tests.cli.test_tune import tune_args

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

URL_ENV = "DML_BENCH_TEST_POSTGRES_URL"
HOW = (
    f"no PostgreSQL server: set {URL_ENV}=postgresql://USER@HOST:PORT/DB, e.g. after "
    '`eval "$(.ci/start-postgres)"` (installs Debian\'s postgresql and starts a throwaway cluster)'
)


@pytest.fixture(scope="module")
def postgres_url() -> str:
    url = os.environ.get(URL_ENV)
    if not url:
        if os.environ.get("DML_BENCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(HOW)
        pytest.skip(HOW)
    return url


def test_two_workers_share_one_study_on_postgres(
    postgres_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_root = shared_data_root(tmp_path_factory)
    group = f"pg-{uuid.uuid4().hex[:8]}"
    results = tmp_path / "results"
    args = tune_args(
        results, "--study", group, "--workers", "2", "--storage", postgres_url, trials=4
    )
    result = invoke(args, data_root)
    assert result.exit_code == 0, describe(result)
    trials = optuna.load_study(study_name=f"{group}:proxy_nca", storage=postgres_url).get_trials()
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 4
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    # no trial evaluated twice: one folder per trial that trained, one fold each
    trained = [t for t in trials if not t.user_attrs.get("surplus")]
    folders = sorted(p.name for p in (results / "tuning" / group / "proxy_nca").iterdir())
    assert folders == sorted(f"trial-{t.number:04d}" for t in trained)
    assert len({t.number for t in done}) == 4
    # both worker processes took trials from the one study
    assert len({t.user_attrs["worker"] for t in done}) == 2
