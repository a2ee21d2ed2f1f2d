"""``--log tensorboard``: TensorBoard's own reader finds every metric of metrics.csv over steps,
the loss of every training step, and the run's config as hparams."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from dml_bench.track import metric_tag
from tests.cli.helpers import invoke, run_args, shared_data_root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.mark.slow
def test_event_files_hold_metrics_losses_and_hparams(tmp_path: Path, data_root: Path) -> None:
    results = tmp_path / "results"
    result = invoke(run_args(results, "--log", "tensorboard"), data_root)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c != "step"]
    assert {"recall@1", "nmi", "proxy_nca_loss", "eps_mean"} <= set(columns)
    tags = set(events.Tags()["scalars"])
    for column in columns:
        logged = sorted((e.step, e.value) for e in events.Scalars(metric_tag(column)))
        expected = sorted(
            (int(r["step"]), float(r[column]))
            for r in rows
            if r[column] != "" and math.isfinite(float(r[column]))
        )
        assert [s for s, _ in logged] == [s for s, _ in expected], column
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)
        tags.discard(metric_tag(column))
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, 13))  # every step of the 12
    assert tags == {"train/loss"}
    # The mean of the logged losses between two evaluations is the recorded train_loss.
    window = [e.value for e in losses if 1 <= e.step <= 6]
    assert sum(window) / 6 == pytest.approx(float(rows[1]["train_loss"]), rel=1e-5)
    content = events.PluginTagToContent("hparams")
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = info.session_start_info.hparams
    config = json.loads((run_dir / "config.json").read_text())
    assert hparams["method"].string_value == "proxy_nca"
    assert hparams["method_config.scale"].number_value == config["method_config"]["scale"]
    assert hparams["steps"].number_value == 12
