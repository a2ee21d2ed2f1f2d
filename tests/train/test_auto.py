"""``trunk=auto``: what it picks from the images, the device and the cached weights, and that
it never replaces a value the user set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dml_bench.data import DATASETS
from dml_bench.train import auto
from dml_bench.train.plan import ExperimentRequest, plan_runs


def image_tree(root: Path, width: int, height: int, classes: int = 4, per_class: int = 3) -> Path:
    for c in range(classes):
        for i in range(per_class):
            path = root / f"c{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((height, width, 3), 40 * c + i, np.uint8)).save(path)
    return root


def choose(values: dict, tree: Path) -> auto.AutoChoice:
    spec = DATASETS.get("folder")
    return auto.choose(values, spec, spec.make_config({"path": str(tree)}))


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "googlenet_weights_cached", lambda: False)


def test_small_images_on_a_cpu_get_small_cnn_at_their_own_size(tmp_path, no_weights) -> None:
    choice = choose({"device": "cpu"}, image_tree(tmp_path, 64, 80))
    assert choice.values == {"trunk": "small_cnn", "pretrained": False, "resize": 64, "crop": 56}
    assert "images ~64 px" in choice.reason and "\n" not in choice.reason


def test_large_photos_with_cached_weights_get_the_papers_setup(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(auto, "googlenet_weights_cached", lambda: True)
    choice = choose({"device": "cpu"}, image_tree(tmp_path, 300, 200))
    assert choice.values == {"trunk": "googlenet", "pretrained": True, "resize": 256, "crop": 227}
    small = choose({"device": "cpu"}, image_tree(tmp_path / "s", 64, 64))
    assert small.values["trunk"] == "small_cnn"  # weights, but images too small for them on a CPU


def test_large_photos_without_weights_on_a_cpu_stay_small(tmp_path, no_weights) -> None:
    choice = choose({"device": "cpu"}, image_tree(tmp_path, 300, 200))
    assert choice.values == {"trunk": "small_cnn", "pretrained": False, "resize": 72, "crop": 63}


def test_explicit_values_are_kept(tmp_path, no_weights) -> None:
    tree = image_tree(tmp_path, 64, 64)
    asked = choose({"device": "cpu", "pretrained": "true"}, tree)
    assert asked.values == {"trunk": "googlenet", "resize": 256, "crop": 227}  # weights asked for
    sizes = choose({"device": "cpu", "crop": 48}, tree)
    assert sizes.values == {"trunk": "small_cnn", "pretrained": False, "resize": 64}
    bigger = choose({"device": "cpu", "crop": 100}, tree)
    assert bigger.values["resize"] == 100  # never a crop larger than the resize
    fixed = choose({"trunk": "resnet50", "resize": 128, "crop": 112}, tree)
    assert fixed.values == {} and fixed.reason == ""


def test_glyphs_keep_trunk_auto_and_their_run_ids(tmp_path) -> None:
    request = ExperimentRequest(methods=("proxy_nca",), run_params={"data_root": str(tmp_path)})
    (config,) = plan_runs(request)
    # small_cnn wherever it runs, so the config keeps "auto" and recorded run ids stay valid
    assert (config.trunk, config.pretrained) == ("auto", True)
    explicit = plan_runs(
        ExperimentRequest(
            methods=("proxy_nca",), run_params={"trunk": "small_cnn", "pretrained": True}
        )
    )
    assert explicit[0].pretrained is True  # said once at planning, not replaced


def test_plan_logs_the_choice_once(tmp_path, no_weights, caplog) -> None:
    tree = image_tree(tmp_path, 64, 64)
    request = ExperimentRequest(
        methods=("proxy_nca", "triplet_semihard"), dataset=f"folder:{tree}", seeds=(0, 1),
        run_params={"device": "cpu", "batch_size": 8},
    )  # fmt: skip
    with caplog.at_level("INFO", logger="dml_bench"):
        configs = plan_runs(request)
    assert {(c.trunk, c.resize, c.crop) for c in configs} == {("small_cnn", 64, 56)}
    assert sum("auto:" in r.getMessage() for r in caplog.records) == 1
