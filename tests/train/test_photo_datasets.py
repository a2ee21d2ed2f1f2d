"""End to end on the paper's three datasets: fake trees in the official layouts, CPU, no weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dml_bench.cli.main import cli
from dml_bench.data import fakes

BUILDERS = {
    "cub200": fakes.make_cub200_tree,
    "cars196": fakes.make_cars196_tree,
    "sop": fakes.make_sop_tree,
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(BUILDERS))
def test_run_on_a_fake_tree_with_the_paper_split(dataset: str, tmp_path: Path) -> None:
    root = BUILDERS[dataset](tmp_path / "data", n_classes=8, per_class=3)
    results = tmp_path / "results"
    args = [
        "run",
        "--methods",
        "proxy_nca",
        "--dataset",
        dataset,
        "--data-root",
        str(root),
        "--trunk",
        "googlenet",
        "--no-pretrained",
        "--steps",
        "5",
        "--eval-every",
        "5",
        "--batch-size",
        "6",
        "--set",
        "resize=64",
        "--set",
        "crop=56",
        "--results-dir",
        str(results),
        "--no-progress",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    config = json.loads((run_dir / "config.json").read_text())
    # 8 classes x 3 images, spread over both halves of the official class ranges: 4 + 4 classes.
    assert (config["num_train_classes"], config["num_test_classes"]) == (4, 4)
    assert (config["num_train_images"], config["num_test_images"]) == (12, 12)
    assert config["trunk_resolved"] == "googlenet" and config["pretrained"] is False
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "5"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--methods",
            "proxy_nca",
            "--dataset",
            "cub200",
            "--data-root",
            str(missing),
            "--results-dir",
            str(tmp_path / "r"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert str(missing) in result.output.replace("\n", " ") and "Traceback" not in result.output
    results = tmp_path / "r"
    assert not results.exists() or not any(results.iterdir())  # no half-made run folder
