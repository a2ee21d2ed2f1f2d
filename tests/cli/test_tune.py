"""``dml-bench tune`` end to end on the default SQLite storage, then ``run --tuned`` and the report.

Tiny studies (3 trials of the tiny run per method) through the real command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from dml_bench.tune.storage import default_storage
from tests.cli.helpers import TINY_ARGS, describe, file_hashes, invoke, run_args, shared_data_root

pytestmark = pytest.mark.slow


def tune_args(results: Path, *extra: str, methods: str = "proxy_nca", trials: int = 3) -> list[str]:
    return [
        "tune",
        "--methods",
        methods,
        "--trials",
        str(trials),
        "--folds",
        "3",
        *TINY_ARGS,
        "--results-dir",
        str(results),
        *extra,
    ]


def trials_of(results: Path, group: str, method: str) -> list[Any]:
    study = optuna.load_study(study_name=f"{group}:{method}", storage=default_storage(results))
    return study.get_trials(deepcopy=False)


def finished(trials: list[Any]) -> list[Any]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def tuned_results(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A finished two-method study, shared by the tests that read it."""
    results = tmp_path_factory.mktemp("tuned") / "results"
    result = invoke(tune_args(results, "--study", "s", methods="proxy_nca,nca"), data_root)
    assert result.exit_code == 0, describe(result)
    return results


def test_every_method_gets_exactly_the_budget_and_a_record(tuned_results: Path) -> None:
    record = json.loads((tuned_results / "tuning" / "s" / "study.json").read_text())
    assert record["budget"]["trials"] == 3 and record["budget"]["steps"] == 12
    for method in ("proxy_nca", "nca"):
        trials = trials_of(tuned_results, "s", method)
        assert len(finished(trials)) == 3
        assert not [t for t in trials if t.state.name == "RUNNING"]
        best = max((t for t in trials if t.value is not None), key=lambda t: t.value)
        assert record["methods"][method]["best"]["value"] == pytest.approx(best.value)
        assert record["methods"][method]["best"]["params"] == best.params
        # every parameter of the method's space was searched, inside its declared range
        from dml_bench.methods import METHODS

        base_lr = record["methods"][method]["base_config"]["lr"]
        for param in METHODS.get(method).search_space:
            # the lr range is relative: one decade either side of the run's lr
            absolute = param.resolve(base_lr) if param.relative else param
            assert all(absolute.contains(t.params[param.name]) for t in trials)
            kept = {p["name"]: p for p in record["methods"][method]["search_space"]}
            assert kept[param.name]["low"] == pytest.approx(absolute.low)
            assert kept[param.name]["high"] == pytest.approx(absolute.high)
        # the first trial trained the method's hand-picked defaults, and no other trial did
        defaults = {
            p.name: getattr(METHODS.get(method).default_config(), p.name, None)
            for p in METHODS.get(method).search_space
        }
        defaults["lr"] = record["methods"][method]["base_config"]["lr"]
        assert defaults["lr"] == 1e-3
        assert trials[0].params == defaults and trials[0].user_attrs["defaults"] is True
        assert [t.number for t in trials if t.params == defaults] == [0]
        entry = record["methods"][method]["defaults"]
        assert entry["trial"] == 0 and entry["enqueued"] is True
        assert entry["value"] == pytest.approx(trials[0].value)
        assert record["methods"][method]["best"]["value"] >= entry["value"]
        # the objective is the last validation evaluation of the trial's fold
        for t in finished(trials):
            if t.state.name == "COMPLETE":
                metrics = (
                    tuned_results / "tuning" / "s" / method / f"trial-{t.number:04d}" / "fold-0"
                )
                last = (metrics / "metrics.csv").read_text().strip().splitlines()[-1]
                header = (metrics / "metrics.csv").read_text().splitlines()[0].split(",")
                assert float(last.split(",")[header.index("map@r")]) == pytest.approx(t.value)


def test_running_the_command_again_adds_no_trial(tuned_results: Path, data_root: Path) -> None:
    before = {m: len(trials_of(tuned_results, "s", m)) for m in ("proxy_nca", "nca")}
    result = invoke(tune_args(tuned_results, "--study", "s", methods="proxy_nca,nca"), data_root)
    assert result.exit_code == 0, describe(result)
    assert {m: len(trials_of(tuned_results, "s", m)) for m in before} == before
    record = json.loads((tuned_results / "tuning" / "s" / "study.json").read_text())
    assert len(record["sessions"]) == 2


def test_a_larger_budget_on_the_same_name_is_refused(tuned_results: Path, data_root: Path) -> None:
    before = file_hashes(tuned_results)
    result = invoke(
        tune_args(tuned_results, "--study", "s", methods="proxy_nca,nca", trials=4), data_root
    )
    assert result.exit_code == 2, describe(result)
    message = " ".join(result.output.split())
    assert message.startswith("Error: The study 's'") and "exists for budget" in message
    assert "--study NAME" in message
    assert file_hashes(tuned_results) == before


@pytest.fixture(scope="module")
def trained(tuned_results: Path, data_root: Path) -> Path:
    """``tuned_results`` with runs at the study's best parameters (proxy_nca, nca) and one
    untuned proxy_nca run: a fixture, so that every test reading them finds them whichever
    worker runs it."""
    result = invoke(run_args(tuned_results, "--tuned", methods="proxy_nca,nca"), data_root)
    assert result.exit_code == 0, describe(result)
    untuned = invoke(run_args(tuned_results, methods="proxy_nca"), data_root)
    assert untuned.exit_code == 0, describe(untuned)
    return tuned_results


def test_run_tuned_trains_at_the_best_parameters_and_records_them(trained: Path) -> None:
    tuned_results = trained
    record = json.loads((tuned_results / "tuning" / "s" / "study.json").read_text())
    configs = [
        json.loads(p.read_text()) for p in sorted(tuned_results.glob("hershey-*/config.json"))
    ]
    tuned = {c["method"]: c for c in configs if c.get("tuning")}
    assert set(tuned) == {"proxy_nca", "nca"}
    for method, config in tuned.items():
        best = record["methods"][method]["best"]
        assert config["tuning"]["study"] == "s"
        assert config["tuning"]["trial"] == best["trial"]
        assert config["tuning"]["val_score"] == pytest.approx(best["value"])
        assert config["lr"] == pytest.approx(best["params"]["lr"])
        assert config["method_config"]["scale"] == pytest.approx(best["params"]["scale"])
        assert config["val_classes"] == 0.0  # trained on all train classes
    plain = [c for c in configs if not c.get("tuning")]
    assert len(plain) == 1 and plain[0]["run_id"] != tuned["proxy_nca"]["run_id"]


def test_the_report_has_a_tuning_section(trained: Path, data_root: Path) -> None:
    tuned_results = trained
    result = invoke(["report", "--results-dir", str(tuned_results)], data_root)
    assert result.exit_code == 0, describe(result)
    report = (tuned_results / "report" / "report.md").read_text()
    assert "## Tuning" in report
    assert "3 trials x 12 steps" in report
    # each method's row shows its defaults trial's validation score next to the best one
    record = json.loads((tuned_results / "tuning" / "s" / "study.json").read_text())
    assert "| defaults validation | best validation | gain |" in report
    for method in ("proxy_nca", "nca"):
        entry, best = record["methods"][method]["defaults"], record["methods"][method]["best"]
        row = next(
            line for line in report.splitlines() if line.startswith(f"| s | hershey | {method} |")
        )
        assert (
            f"| {entry['value']:.3f} (trial 0) | {best['value']:.3f} (trial {best['trial']}) |"
            in row
        )
    assert (tuned_results / "report" / "tuning_history_s.png").is_file()
    # the runs compared mix tuned and untuned proxy_nca runs: the answers say so
    assert "not tuned with equal budgets" in report


def test_tuning_never_embeds_a_test_class(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dml_bench.train import evaluation

    embedded: list[str] = []
    original = evaluation.embed_dataset

    def spy(model: Any, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        embedded.extend(str(c) for c in dataset.classes)
        return original(model, dataset, *args, **kwargs)

    monkeypatch.setattr(evaluation, "embed_dataset", spy)
    results = tmp_path / "results"
    result = invoke(tune_args(results, "--study", "spy", trials=2), data_root)
    assert result.exit_code == 0, describe(result)
    from dml_bench.train.data import load_run_data
    from dml_bench.train.plan import ExperimentRequest, plan_runs

    config = plan_runs(
        ExperimentRequest(
            methods=("proxy_nca",),
            run_params={"data_root": str(data_root)},
            dataset_params={"max_classes": 24, "images_per_class": 4, "image_size": 16},
        )
    )[0]
    data = load_run_data(config)
    test_classes = {str(c) for c in data.test.classes}
    train_classes = {str(c) for c in data.train.classes}
    assert embedded, "the spy saw no embedding"
    assert not set(embedded) & test_classes
    assert set(embedded) <= train_classes


def test_no_defaults_trial_samples_the_first_trial_too(tmp_path: Path, data_root: Path) -> None:
    results = tmp_path / "results"
    args = tune_args(results, "--study", "r", "--no-defaults-trial", methods="nca", trials=1)
    result = invoke(args, data_root)
    assert result.exit_code == 0, describe(result)
    assert "all sampled" in result.output and " not tried " in result.output
    (trial,) = trials_of(results, "r", "nca")
    assert "defaults" not in trial.user_attrs and trial.params != {"scale": 9.0, "lr": 1e-3}
    record = json.loads((results / "tuning" / "r" / "study.json").read_text())
    assert record["methods"]["nca"]["defaults"]["reason"] == "--no-defaults-trial"
    # the same study without the flag is another deal: refused, nothing changed
    again = invoke(tune_args(results, "--study", "r", methods="nca", trials=1), data_root)
    assert again.exit_code == 2 and "started with --no-defaults-trial" in again.output
