"""Same seed, same command, CPU: the same numbers bit for bit; another seed: other numbers.

Determinism is what makes resume exact (tests/train/test_resume.py) and seeds comparable across
methods. Runs go into separate results directories so that each trains from scratch; one of them
runs in a fresh process so that nothing this test process did (imports, RNG use by other tests,
thread pools) can make two runs agree by accident.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import (
    assert_same_results,
    describe,
    invoke,
    launch,
    metric_rows,
    only_run,
    run_args,
    shared_data_root,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


def _train(results: Path, data_root: Path, *extra: str, methods: str = "proxy_nca") -> Path:
    result = invoke(run_args(results, *extra, methods=methods), data_root)
    assert result.exit_code == 0, describe(result)
    return only_run(results)


@pytest.mark.parametrize("method", ["proxy_nca", "triplet_semihard"])
def test_same_seed_same_command_gives_identical_metrics(
    method: str, tmp_path: Path, data_root: Path
) -> None:
    """Random batches (proxy_nca) and m-per-class batches drawn through pytorch-metric-learning's
    sampler and its module-level RNG (triplet_semihard)."""
    first = _train(tmp_path / "a", data_root, methods=method)
    second = _train(tmp_path / "b", data_root, methods=method)
    assert first.name == second.name
    assert_same_results(second, first)


def test_a_fresh_process_gives_identical_metrics(tmp_path: Path, data_root: Path) -> None:
    here = _train(tmp_path / "here", data_root)
    process = launch(run_args(tmp_path / "there"), data_root, tmp_path / "there.log")
    code, output = process.finish()
    assert code == 0, output
    assert_same_results(only_run(tmp_path / "there"), here)


def test_different_seeds_give_different_metrics(tmp_path: Path, data_root: Path) -> None:
    zero = _train(tmp_path / "zero", data_root, "--seeds", "0")
    one = _train(tmp_path / "one", data_root, "--seeds", "1")
    assert zero.name != one.name
    rows_zero, rows_one = metric_rows(zero), metric_rows(one)
    # Training losses differ at every evaluation after step 0 (other batches, other init).
    for a, b in zip(rows_zero[1:], rows_one[1:], strict=True):
        assert a["train_loss"] != b["train_loss"]
    assert rows_zero[-1]["nmi"] != rows_one[-1]["nmi"]
