"""The tracker fan-out: tags, guarded calls (a failing tracker warns once and is dropped, the
others go on), and no tracking package imported by a run that did not ask for one."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from dml_bench.track import Trackers, flat_params, metric_tag


class Recording:
    def __init__(self, fail_at: int | None = None) -> None:
        self.points: list[tuple[int, Mapping[str, float]]] = []
        self.calls, self.fail_at = 0, fail_at
        self.finished: str | None = None

    def start(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def metrics(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("server went away")
        self.points += points

    def finish(self, status: str, run_dir: Path) -> None:
        self.finished = status


def test_tags_name_where_a_metric_comes_from() -> None:
    assert metric_tag("recall@4") == "test/recall@4"
    assert metric_tag("map@r") == "test/map@r"
    assert metric_tag("val_recall@1") == "val/recall@1"
    assert metric_tag("train_loss") == "train/mean_loss"
    assert metric_tag("elapsed_s") == "run/elapsed_s"
    assert metric_tag("order_agreement") == "diagnostics/order_agreement"


def test_params_are_flat_scalars() -> None:
    record = {"method_config": {"scale": 9.0, "ks": [1, 2]}, "notes": None, "seed": 0}
    assert flat_params(record) == {
        "method_config.scale": 9.0,
        "method_config.ks": "1,2",
        "notes": "None",
        "seed": 0,
    }


def test_a_failing_tracker_warns_once_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad = Recording(), Recording(fail_at=2)
    trackers = Trackers({"good": good, "bad": bad})
    trackers.start({"seed": 0})
    with caplog.at_level(logging.WARNING, logger="dml_bench.track"):
        trackers.losses(1, [0.5, 0.4])
        trackers.evaluation({"step": 2, "recall@1": 0.25, "train_loss": 0.45, "note": "x"})
        trackers.losses(3, [0.3])
        trackers.finish("completed", Path("."))
    assert good.points == [
        (1, {"train/loss": 0.5}),
        (2, {"train/loss": 0.4}),
        (2, {"test/recall@1": 0.25, "train/mean_loss": 0.45}),
        (3, {"train/loss": 0.3}),
    ]
    assert bad.points == good.points[:2] and bad.calls == 2 and bad.finished is None
    assert good.finished == "completed" and trackers.names == ["good"]
    (warning,) = caplog.records
    assert (
        "bad logging failed" in warning.getMessage() and "server went away" in warning.getMessage()
    )


@pytest.mark.slow
def test_a_run_without_log_imports_no_tracking_package(tmp_path: Path) -> None:
    code = f"""
import sys
from dml_bench.train import plan_runs, run_experiment, ExperimentRequest
request = ExperimentRequest(
    methods=("proxy_nca",),
    run_params={{"steps": 2, "eval_every": 2, "batch_size": 8, "data_root": {str(tmp_path)!r},
                 "diagnostic_classes": 4, "diagnostic_triplets": 10}},
    dataset_params={{"max_classes": 8, "images_per_class": 4, "image_size": 16}},
)
(outcome,) = run_experiment(plan_runs(request), __import__("pathlib").Path({str(tmp_path / "r")!r}))
assert outcome.status == "completed", outcome
print(sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "tensorboard")
             or m.startswith("torch.utils.tensorboard")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
