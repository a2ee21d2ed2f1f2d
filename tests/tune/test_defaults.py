"""The defaults trial: each method's hand-picked values are its study's first trial, exactly once.

Studies here are tiny (nca, 12 steps on 24 glyph classes of 16 px, SQLite under ``tmp_path``) and
driven through the library, so a test can stop a worker between trials or in the middle of one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import optuna
import pytest

from dml_bench.methods import BUILTIN_METHODS, METHODS, NETWORK_LR, SearchParam
from dml_bench.train.config import RunConfig
from dml_bench.train.plan import ExperimentRequest, plan_runs
from dml_bench.tune import plan as plan_module
from dml_bench.tune import worker
from dml_bench.tune.adapter import trial_config
from dml_bench.tune.defaults import STUDY_ATTR, TRIAL_ATTR, enqueue_defaults, method_defaults
from dml_bench.tune.local import prepare, tune_locally
from dml_bench.tune.plan import StudyPlan, TuneRequest, plan_study
from dml_bench.tune.record import export_study, now
from dml_bench.tune.study import load_study

TINY_RUN = {"steps": 12, "eval_every": 6, "batch_size": 16, "embedding_size": 8}
TINY_DATA = {"max_classes": 24, "images_per_class": 4, "image_size": 16}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.cli.helpers import shared_data_root

    return shared_data_root(tmp_path_factory)


def tiny_plan(
    results: Path, data_root: Path, trials: int, nca: dict[str, Any] | None = None, **run: Any
) -> StudyPlan:
    experiment = ExperimentRequest(
        methods=("nca",),
        run_params={**TINY_RUN, "data_root": str(data_root), **run},
        method_params={"nca": {k: [v] for k, v in (nca or {}).items()}},
        dataset_params=TINY_DATA,
    )
    request = TuneRequest(experiment, trials=trials, results_dir=results, folds=3, study="d")
    return plan_study(request)


def trials_of(plan: StudyPlan) -> list[Any]:
    return load_study(plan, "nca").get_trials(deepcopy=False)


def finished(trials: list[Any]) -> list[Any]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def expected_defaults(method: str) -> dict[str, Any]:
    """Computed apart from the code under test: the method config class's own defaults, and the
    run's learning rate as RunConfig declares it."""
    config = METHODS.get(method).default_config()
    run_defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    return {
        p.name: getattr(config, p.name) if p.scope == "method" else run_defaults[p.name]
        for p in METHODS.get(method).search_space
    }


@pytest.mark.parametrize("method", BUILTIN_METHODS)
def test_the_defaults_are_the_untuned_run_and_lie_in_the_space(method: str) -> None:
    base = plan_runs(ExperimentRequest(methods=(method,)))[0]
    found = method_defaults(base)
    assert found.params == expected_defaults(method)
    assert found.in_space, found.outside  # no built-in default lies outside its space today
    # the defaults trial trains exactly the configuration `dml-bench run --untuned` would
    assert trial_config(base, found.params) == base


def test_values_given_to_tune_are_the_defaults_trial(tmp_path: Path) -> None:
    plan = plan_study(
        TuneRequest(
            ExperimentRequest(methods=("nca",), run_params={"lr": 3e-3}),
            trials=2,
            results_dir=tmp_path,
        )
    )
    assert method_defaults(plan.base_config("nca")).params == {"scale": 9.0, "lr": 3e-3}


class _NarrowSpec:
    """A stand-in spec (as a plugin might declare) whose scale range [1, 4] misses its default 9."""

    search_space = (SearchParam("scale", "float", 1.0, 4.0, citation="test"), NETWORK_LR)


def test_a_default_outside_the_space_is_named_and_not_enqueued(
    tmp_path: Path,
    data_root: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = tiny_plan(tmp_path / "results", data_root, trials=2)
    monkeypatch.setattr(plan_module, "METHODS", _Methods(_NarrowSpec()))
    with caplog.at_level(logging.WARNING, logger="dml_bench.tune.defaults"):
        prepare(plan)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "nca: its default scale=9.0" in warning
    assert (
        "above the range's high bound 4" in warning and "all of its trials are sampled" in warning
    )
    assert trials_of(plan) == []  # nothing enqueued, nothing clipped
    record = json.loads(export_study(plan, {"started": now()}).read_text())
    entry = record["methods"]["nca"]["defaults"]
    assert entry["enqueued"] is False and entry["reason"] == "outside the search space"
    assert entry["trial"] is None and set(entry["outside_space"]) == {"scale"}
    assert entry["params"] == {"scale": 9.0, "lr": 1e-3}

    from dml_bench.report.tuning import defaults_cell, findings

    cell = defaults_cell(findings(tmp_path / "results")[0].defaults)
    assert cell.startswith("not tried (outside the search space: scale=9 9 is above")


def test_the_lr_is_searched_a_decade_either_side_of_the_run_lr(
    tmp_path: Path, data_root: Path
) -> None:
    """The Reality Check preset's 1e-6 (RMSprop, pretrained trunk) lay below the old absolute
    range [1e-4, 1e-2]: its trials trained at 100x that rate or more and no defaults trial ran."""
    plan = tiny_plan(tmp_path / "results", data_root, trials=3, lr=1e-6)
    lr = {p.name: p for p in plan.search_space("nca")}["lr"]
    assert (lr.low, lr.high) == (pytest.approx(1e-7), pytest.approx(1e-5))
    assert lr.log and not lr.relative
    prepare(plan)
    tune_locally(plan, 1, None)
    trials = finished(trials_of(plan))
    assert len(trials) == 3 and trials[0].params == {"scale": 9.0, "lr": 1e-6}
    assert all(1e-7 <= t.params["lr"] <= 1e-5 for t in trials)
    record = json.loads(export_study(plan, {"started": now()}).read_text())
    method = record["methods"]["nca"]
    assert method["defaults"]["enqueued"] is True and method["defaults"]["trial"] == 0
    kept = {p["name"]: (p["low"], p["high"]) for p in method["search_space"]}
    assert kept["lr"] == (pytest.approx(1e-7), pytest.approx(1e-5))
    assert kept["scale"] == (1.0, 16.0)


class _Spec:
    """A stand-in spec whose space makes Proxy-NCA's scale a categorical without 9 (the
    default): Optuna cannot encode a fixed categorical value outside the choices."""

    search_space = (SearchParam("scale", "categorical", choices=(2.0, 4.0), citation="test"),)


class _Methods:
    def __init__(self, spec: Any = None) -> None:
        self.spec = spec or _Spec()

    def get(self, name: str) -> Any:
        return self.spec


def test_a_categorical_default_outside_the_choices_is_not_enqueued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = plan_runs(ExperimentRequest(methods=("nca",)))[0]
    monkeypatch.setattr(plan_module, "METHODS", _Methods())
    study = optuna.create_study(direction="maximize")
    entry = enqueue_defaults(study, base, enabled=True)
    assert entry["outside_space"] == {"scale": "not one of 2.0, 4.0"}
    assert entry["enqueued"] is False and study.get_trials() == []


def test_with_one_trial_the_best_trial_is_the_defaults_trial(
    tmp_path: Path, data_root: Path
) -> None:
    plan = tiny_plan(tmp_path / "results", data_root, trials=1)
    prepare(plan)
    outcome = tune_locally(plan, 1, None)
    record = json.loads(outcome.record.read_text())["methods"]["nca"]
    (trial,) = trials_of(plan)
    assert trial.number == 0 and trial.user_attrs[TRIAL_ATTR] is True
    assert trial.params == expected_defaults("nca")
    assert record["best"]["trial"] == 0 and record["defaults"]["trial"] == 0
    assert record["defaults"]["value"] == pytest.approx(record["best"]["value"])
    assert record["defaults"]["state"] == "complete"
    assert [t["defaults"] for t in record["trials"]] == [True]


class Stop(KeyboardInterrupt):
    """Ctrl-C, raised by the test at a chosen moment."""


def test_resuming_an_interrupted_study_does_not_enqueue_the_defaults_again(
    tmp_path: Path, data_root: Path
) -> None:
    plan = tiny_plan(tmp_path / "results", data_root, trials=2)
    prepare(plan)

    def stop() -> None:
        raise Stop

    with pytest.raises(Stop):  # Ctrl-C right after the first trial
        worker.run_worker(plan, 0, on_trial=stop)
    assert [t.state.name for t in trials_of(plan)] == ["COMPLETE"]
    prepare(plan)  # the same command again: joins, continues
    tune_locally(plan, 1, None)
    trials = trials_of(plan)
    defaults = expected_defaults("nca")
    assert len(finished(trials)) == 2 and len(trials) == 2
    assert [t.number for t in trials if t.params == defaults] == [0]
    assert [t.number for t in trials if t.user_attrs.get(TRIAL_ATTR)] == [0]


def test_a_defaults_trial_stopped_by_ctrl_c_is_queued_again_and_run_first(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tiny_plan(tmp_path / "results", data_root, trials=2)
    prepare(plan)
    original = worker.train_fold

    def interrupted(*args: Any, **kwargs: Any) -> float:
        raise Stop

    monkeypatch.setattr(worker, "train_fold", interrupted)
    with pytest.raises(Stop):
        worker.run_trial(plan, "nca")
    first, queued = trials_of(plan)
    assert first.state.name == "FAIL" and first.user_attrs["interrupted"] is True
    assert queued.state.name == "WAITING" and queued.user_attrs[TRIAL_ATTR] is True
    assert queued.system_attrs["fixed_params"] == expected_defaults("nca")
    monkeypatch.setattr(worker, "train_fold", original)
    worker.run_trial(plan, "nca")  # the resumed study's next trial is the queued defaults
    trials = trials_of(plan)
    assert len(trials) == 2 and trials[1].state.name == "COMPLETE"
    assert trials[1].params == expected_defaults("nca")
    record = json.loads(export_study(plan, {"started": now()}).read_text())
    assert record["methods"]["nca"]["defaults"]["trial"] == 1  # the one that finished


def test_no_defaults_trial_samples_every_trial(tmp_path: Path) -> None:
    request = TuneRequest(
        ExperimentRequest(methods=("nca",)), trials=2, results_dir=tmp_path, defaults_trial=False
    )
    plan = plan_study(request)
    with_defaults = plan_study(dataclasses.replace(request, defaults_trial=True))
    assert plan.group != with_defaults.group  # the same command with and without the flag
    from dml_bench.tune.study import create_or_join

    create_or_join(plan)
    study = load_study(plan, "nca")
    assert study.get_trials() == []
    assert study.user_attrs[STUDY_ATTR]["reason"] == "--no-defaults-trial"
