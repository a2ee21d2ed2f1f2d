"""``dml-bench embed`` and ``dml-bench evaluate`` on a kept model and its embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.helpers import invoke, run_args, shared_data_root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.mark.slow
def test_embed_reproduces_the_run_and_evaluate_its_metrics(tmp_path: Path, data_root: Path) -> None:
    results = tmp_path / "results"
    assert invoke(run_args(results), data_root).exit_code == 0
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    out = tmp_path / "emb" / "test.npz"
    args = ["embed", run_dir.name, "--dataset", "hershey", "--out", str(out)]
    result = invoke([*args, "--results-dir", str(results)], data_root)
    assert result.exit_code == 0, result.output
    mine, kept = np.load(out), np.load(run_dir / "embeddings_test.npz")
    np.testing.assert_allclose(mine["embeddings"], kept["embeddings"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mine["labels"], kept["labels"])
    np.testing.assert_array_equal(mine["classes"], kept["classes"])

    csv = tmp_path / "train.csv"
    result = invoke(["embed", str(run_dir), "--dataset", "hershey", "--split", "train",
                     "--out", str(csv)], data_root)  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(csv)
    config = json.loads((run_dir / "config.json").read_text())
    assert len(frame) == config["num_train_images"]
    assert list(frame.columns[:3]) == ["label", "class", "e0"] and frame.shape[1] == 2 + 8

    summary = json.loads((run_dir / "summary.json").read_text())
    for path in (out, run_dir / "embeddings_test.npz"):
        result = invoke(["evaluate", str(path), "--ks", "1,2"], data_root)
        assert result.exit_code == 0, result.output
        scores = dict(line.split() for line in result.output.splitlines())
        for name in ("recall@1", "recall@2", "nmi", "map@r"):
            assert float(scores[name]) == pytest.approx(summary["final"][name], abs=1e-4), name


def test_embed_without_a_kept_model_and_bad_files_are_user_errors(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    result = invoke(["embed", str(run_dir), "--dataset", "hershey", "--out", "x.npz"], tmp_path)
    assert result.exit_code == 2 and "holds no kept model" in result.output
    result = invoke(["embed", str(run_dir), "--dataset", "hershey", "--out", "x.parquet"], tmp_path)
    assert result.exit_code == 2 and ".npz or .csv" in result.output
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = invoke(["evaluate", str(bad)], tmp_path)
    assert result.exit_code == 2 and "Cannot read embeddings" in result.output
