"""A dataset's packaged study: its winners are ``dml-bench run``'s defaults on the set-up it tuned,
what the user sets wins, another set-up and ``--untuned`` train at the hand-picked defaults."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from dml_bench.data import DATASETS
from dml_bench.methods import METHODS
from tests.cli.helpers import describe, invoke, run_args, shared_data_root
from tests.cli.test_tune import tune_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The record of a finished proxy_nca study on the tiny set-up, copied out as a dataset would
    ship it (the results directory it came from is gone)."""
    results = tmp_path_factory.mktemp("study") / "results"
    result = invoke(tune_args(results, "--study", "shipped", trials=2), data_root)
    assert result.exit_code == 0, describe(result)
    shipped = tmp_path_factory.mktemp("package") / "hershey-shipped.json"
    shutil.copy(results / "tuning" / "shipped" / "study.json", shipped)
    shutil.rmtree(results)
    return shipped


@pytest.fixture
def shipping(packaged: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    spec = dataclasses.replace(DATASETS.get("hershey"), tuned_defaults=packaged)
    monkeypatch.setitem(DATASETS._entries, "hershey", spec)
    record: dict[str, Any] = json.loads(packaged.read_text())
    return record


def configs(results: Path) -> dict[str, dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted(results.glob("hershey-*/config.json"))]
    return {c["method"]: c for c in found}


def run(tmp_path: Path, data_root: Path, *extra: str, methods: str = "proxy_nca") -> Any:
    results = tmp_path / "results"
    result = invoke(run_args(results, *extra, methods=methods), data_root)
    assert result.exit_code == 0, describe(result)
    return configs(results)


def test_the_default_run_trains_at_the_studys_winners(
    shipping: dict[str, Any], tmp_path: Path, data_root: Path
) -> None:
    best = shipping["methods"]["proxy_nca"]["best"]
    found = run(tmp_path, data_root, methods="proxy_nca,nca")
    tuned = found["proxy_nca"]
    assert tuned["tuning"]["study"] == "shipped"
    assert tuned["tuning"]["storage"] == "packaged:hershey-shipped.json"
    assert tuned["tuning"]["trial"] == best["trial"]
    assert tuned["lr"] == pytest.approx(best["params"]["lr"])
    for name, value in best["params"].items():
        if name != "lr":
            assert tuned["method_config"][name] == pytest.approx(value)
    # nca was not in the study: its hand-picked defaults, no tuning source
    assert found["nca"].get("tuning") is None
    assert found["nca"]["method_config"] == dataclasses.asdict(METHODS.get("nca").default_config())


def test_what_the_user_sets_wins_over_the_study(
    shipping: dict[str, Any], tmp_path: Path, data_root: Path
) -> None:
    best = shipping["methods"]["proxy_nca"]["best"]["params"]
    config = run(tmp_path, data_root, "--lr", "0.0042", "--set", "proxy_nca.scale=2.5")["proxy_nca"]
    assert config["lr"] == pytest.approx(0.0042)
    assert config["method_config"]["scale"] == pytest.approx(2.5)
    others = {k: v for k, v in best.items() if k not in ("lr", "scale")}
    assert others  # the space has more than lr and scale, so something still came from the study
    for name, value in others.items():
        assert config["method_config"][name] == pytest.approx(value)
    assert config["tuning"]["study"] == "shipped"


@pytest.mark.parametrize(
    "extra",
    [("--untuned",), ("--batch-size", "24"), ("--set", "dataset.max_classes=20")],
    ids=["untuned", "other batch size", "other dataset parameters"],
)
def test_untuned_or_another_setup_trains_at_the_hand_picked_defaults(
    extra: tuple[str, ...], shipping: dict[str, Any], tmp_path: Path, data_root: Path
) -> None:
    config = run(tmp_path, data_root, *extra)["proxy_nca"]
    assert config.get("tuning") is None
    assert config["method_config"] == dataclasses.asdict(METHODS.get("proxy_nca").default_config())


def test_tuned_and_untuned_together_is_bad_input(
    shipping: dict[str, Any], tmp_path: Path, data_root: Path
) -> None:
    result = invoke(run_args(tmp_path / "results", "--tuned", "--untuned"), data_root)
    assert result.exit_code == 2, describe(result)
    assert "--tuned and --untuned contradict" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()


def test_an_unreadable_packaged_study_falls_back_with_a_warning(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dataclasses.replace(DATASETS.get("hershey"), tuned_defaults=tmp_path / "missing.json")
    monkeypatch.setitem(DATASETS._entries, "hershey", spec)
    result = invoke(run_args(tmp_path / "results"), data_root)
    assert result.exit_code == 0, describe(result)
    assert "missing.json cannot be read; hand-picked defaults" in result.output
    assert configs(tmp_path / "results")["proxy_nca"].get("tuning") is None


def test_the_report_shows_the_shipped_study_it_trained_from(
    shipping: dict[str, Any], tmp_path: Path, data_root: Path
) -> None:
    run(tmp_path, data_root, "--seeds", "0,1")
    results = tmp_path / "results"
    result = invoke(["report", "--results-dir", str(results)], data_root)
    assert result.exit_code == 0, describe(result)
    report = (results / "report" / "report.md").read_text()
    tuning = report[report.index("## Tuning") :]
    best = shipping["methods"]["proxy_nca"]["best"]
    assert "| shipped | hershey | proxy_nca |" in tuning
    assert f"{best['value']:.3f} (trial {best['trial']})" in tuning
    assert (results / "report" / "tuning_history_shipped.png").is_file()
    assert not (results / "tuning").exists()  # nothing copied into the results directory


def test_the_glyph_study_applies_to_the_default_run() -> None:
    """The shipped glyph study still matches the default set-up: a change of a default (steps,
    batch, dataset parameters) would silently drop the tuned defaults; this says so instead."""
    from dml_bench.methods import DEFAULT_METHODS
    from dml_bench.train import ExperimentRequest, plan_runs
    from dml_bench.tune.packaged import apply_packaged, packaged_study

    found = packaged_study("hershey")
    assert found is not None
    path, record = found
    assert path.name == "hershey-glyphs-defaults.json" and record["group"] == "glyphs-defaults"
    request = ExperimentRequest(methods=tuple(DEFAULT_METHODS))
    for config in apply_packaged(plan_runs(request), request):
        assert config.tuning is not None, config.method
        best = record["methods"][config.method]["best"]
        assert config.tuning.trial == best["trial"]
        assert config.lr == pytest.approx(best["params"]["lr"])
        assert record["budget"]["steps"] == config.steps
