"""Methods are compared only within a comparable group (report/comparability.py, report/runs.py).

Each test here describes a report that a1469a8 got wrong: it compared a 100-step proxy_nca with a
300-step triplet_semihard ("a difference of ..."), pooled runs on two CSV files under one
heading "On csv", and built a 95% interval from two runs of one seed.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from dml_bench.config import to_dict
from dml_bench.report import comparability, make_report, rq2_convergence, rq4_retrieval
from dml_bench.report.comparability import findings, setup_options
from dml_bench.report.runs import Group, prepare
from dml_bench.store.read import load_runs
from dml_bench.store.records import comparison_key
from dml_bench.train.recording import run_setup
from tests.report.conftest import RunWriter, recall_curve


def _pair(make_run: RunWriter, records: dict[str, dict[str, object]], dataset: str) -> None:
    """proxy_nca and triplet_semihard, 2 seeds each, with their own config.json additions."""
    for method, final in (("proxy_nca", 0.41), ("triplet_semihard", 0.75)):
        for seed in (0, 1):
            make_run(
                method=method,
                dataset=dataset,
                seed=seed,
                columns={"recall@1": recall_curve(final + 0.01 * seed), "nmi": [0.5] * 9},
                run_id=f"{dataset}-{method}-seed{seed}-x",
                record=records[method],
            )


def test_runs_of_different_steps_are_not_compared(make_run: RunWriter, results: Path) -> None:
    _pair(make_run, {"proxy_nca": {"steps": 100}, "triplet_semihard": {"steps": 300}}, "hershey")
    prep = prepare(load_runs(results))
    assert prep.groups == ["hershey (steps=100)", "hershey (steps=300)"]
    assert all(ds.tests == [] for ds in rq4_retrieval.findings(prep))
    assert all(ds.speedups == [] for ds in rq2_convergence.findings(prep, 0.9))
    [groups] = findings(prep)
    assert groups.apart == [("proxy_nca", "triplet_semihard")]
    report = make_report(results, results / "report").files[-1].read_text()
    assert "a difference of" not in report and "speed-up of" not in report
    assert "Runs on hershey differ in steps" in report
    assert "Not compared, because they never ran with the same set-up: " in report
    assert "proxy_nca vs triplet_semihard" in report


def test_runs_on_two_csv_files_are_two_groups(make_run: RunWriter, results: Path) -> None:
    paths = {"proxy_nca": "/data/a.csv", "triplet_semihard": "/data/b.csv"}
    _pair(make_run, {m: {"dataset_config": {"path": p}} for m, p in paths.items()}, "csv")
    prep = prepare(load_runs(results))
    assert prep.groups == ["csv (dataset.path=a.csv)", "csv (dataset.path=b.csv)"]
    retrieval = rq4_retrieval.findings(prep)
    assert [ds.dataset for ds in retrieval] == prep.groups and not any(r.tests for r in retrieval)
    report = make_report(results, results / "report").files[-1].read_text()
    assert "### csv\n" not in report and "On csv," not in report
    assert "### csv (dataset.path=a.csv)" in report


def test_two_csv_files_of_one_name_are_two_named_groups(make_run: RunWriter, results: Path) -> None:
    """Two folders each with a dataset.csv: the group names showed only the file name, so both
    groups were called "csv (dataset.path=dataset.csv)" and their curves were drawn and
    answered together (a1469a8 had one heading "On csv")."""
    paths = {"proxy_nca": "/data/one/dataset.csv", "triplet_semihard": "/data/two/dataset.csv"}
    _pair(make_run, {m: {"dataset_config": {"path": p}} for m, p in paths.items()}, "csv")
    prep = prepare(load_runs(results))
    assert prep.groups == [
        "csv (dataset.path=one/dataset.csv)",
        "csv (dataset.path=two/dataset.csv)",
    ]
    assert [len(ds.methods) for ds in rq2_convergence.findings(prep, 0.9)] == [1, 1]


def test_the_comparison_key_is_everything_but_the_method() -> None:
    setup = {"steps": 100, "lr": 0.001, "diagnostics": True, "dataset.path": "a.csv"}
    key = comparison_key("csv", setup, {"study": "s", "trial": 3, "budget": {"trials": 12}})
    assert key == {  # a tuned run's lr is its study's choice, not the set-up
        "dataset": "csv",
        "steps": 100,
        "dataset.path": "a.csv",
        "tuning_budget": {"trials": 12},
    }
    untuned = comparison_key("csv", setup, None)
    assert untuned["tuning_budget"] is None and untuned["lr"] == 0.001


def test_tuning_budgets_split_groups(make_run: RunWriter, results: Path) -> None:
    budgets = {
        m: {"tuning": {"study": m, "budget": {"trials": n}}}
        for m, n in (("proxy_nca", 4), ("triplet_semihard", 12))
    }
    _pair(make_run, budgets, "hershey")
    prep = prepare(load_runs(results))
    assert len(prep.groups) == 2 and all("tuning_budget" in g for g in prep.groups)


def test_two_runs_of_one_seed_are_not_pooled(make_run: RunWriter, results: Path) -> None:
    """A rerun of seed 0 (the same label and set-up) is not a second seed: the newest is kept."""
    for run_id, final, updated in (("old", 0.30, "2024-01-01"), ("new", 0.60, "2024-02-01")):
        folder = make_run(
            method="proxy_nca", seed=0, columns={"recall@1": [0.1, final]}, run_id=run_id
        )
        status = json.loads((folder / "status.json").read_text())
        (folder / "status.json").write_text(json.dumps({**status, "updated": updated}))
    prep = prepare(load_runs(results))
    assert list(prep.runs["run_id"]) == ["new"] and prep.repeats == ("old",)
    [method] = rq4_retrieval.findings(prep)[0].methods
    assert method.values["recall@1"].n == 1 and method.values["recall@1"].mean == 0.60
    report = make_report(results, results / "report").files[-1].read_text()
    assert "only the newest run of each seed is used" in report and "`old`" in report


def test_runs_of_edited_code_are_other_rows(make_run: RunWriter, results: Path) -> None:
    """The same method and seed with two source hashes: two rows, neither a repeat."""
    for run_id, code in (("a", "1111aaaa2222bbbb"), ("b", "3333cccc4444dddd")):
        make_run(
            method="proxy_nca",
            seed=0,
            columns={"recall@1": [0.1, 0.5]},
            run_id=run_id,
            record={"method_code": {"source_hash": code}},
        )
    prep = prepare(load_runs(results))
    assert sorted(prep.runs["label"]) == ["proxy_nca {code=1111aaaa}", "proxy_nca {code=3333cccc}"]
    assert prep.repeats == ()


# ---------------------------------------------------------------- "run this" hints
def _plan(command: str) -> list[Any]:
    """The configs the CLI would plan for ``command`` (``dml-bench run ...``), through click's
    parser, the option reader, the planner and the shipped study's winners, as `dml-bench run`
    does before training (a ``--tuned`` hint is not planned here: it needs a study)."""
    from dml_bench.cli.main import run
    from dml_bench.cli.run_options import request_from_options
    from dml_bench.train import plan_runs
    from dml_bench.tune.packaged import apply_packaged

    words = shlex.split(command)
    assert words[:2] == ["dml-bench", "run"], command
    with run.make_context("run", words[2:]) as ctx:
        request = request_from_options(ctx.params)
        configs = plan_runs(request)
        assert not ctx.params["tuned"], command
        return configs if ctx.params["untuned"] else apply_packaged(configs, request)


def _key(config: Any) -> dict[str, Any]:
    """A planned config's comparison key, as its config.json would record it (JSON values)."""
    tuning = to_dict(config.tuning) if config.tuning is not None else None
    key = comparison_key(config.dataset, run_setup(config, to_dict(config)), tuning)
    return dict(json.loads(json.dumps(key, sort_keys=True, default=str)))


def _record_group(make_run: RunWriter, command: str, final: float) -> None:
    """Runs planned by ``command`` (one method, two seeds), recorded with the setup planning
    gave them, as a real run's config.json holds it."""
    for config in _plan(command):
        setup = run_setup(config, to_dict(config))
        make_run(
            method=config.method,
            dataset=config.dataset,
            seed=config.seed,
            columns={"recall@1": recall_curve(final + 0.01 * config.seed), "nmi": [0.5] * 9},
            run_id=f"{config.dataset}-{config.method}-{config.steps}-seed{config.seed}",
            record={"schema": 1, "setup": setup, "dataset_config": to_dict(config.dataset_config)},
        )


def test_run_hints_reproduce_the_group_set_up(
    make_run: RunWriter, results: Path, fake_csv_file: Path
) -> None:
    """A hint planned as printed lands in the group it is for: a1469a8 suggested `dml-bench run
    --methods proxy_nca,triplet_semihard --dataset hershey --seeds 0,1,2`, which plans 600-step
    runs at the default batch size and data, never compared with the 100-step runs it was
    meant to complete."""
    tiny = "--set dataset.max_classes=16 --set dataset.images_per_class=4 --batch-size 16"
    _record_group(
        make_run,
        f"dml-bench run --methods proxy_nca --steps 100 --set lr=0.01 {tiny} --seeds 0,1",
        0.41,
    )
    _record_group(
        make_run, f"dml-bench run --methods triplet_semihard --steps 300 {tiny} --seeds 0,1", 0.75
    )
    _record_group(
        make_run,
        f"dml-bench run --methods proxy_nca --dataset csv:{fake_csv_file} --steps 50 "
        "--resize 16 --crop 16 --no-pretrained --seeds 0,1",
        0.5,
    )
    prep = prepare(load_runs(results))
    assert len(prep.groups) == 3
    body = "\n".join(rq2_convergence.section(prep, rq2_convergence.findings(prep, 0.9), 0.9).body)
    hints = dict(re.findall(r"\*\*No speed-up on (.+?):\*\* .*? run `([^`]+)`", body))
    assert sorted(hints) == sorted(prep.groups)
    for name, command in hints.items():
        planned = _plan(command)
        assert {c.method for c in planned} == {"proxy_nca", "triplet_semihard"}
        assert all(_key(c) == prep.group(name).key for c in planned), (name, command)
    retrieval = "\n".join(rq4_retrieval.section(prep, rq4_retrieval.findings(prep)).body)
    found = re.findall(r"### (.+?)\n.*?run (?:e\.g\. )?`([^`]+)`", retrieval, re.S)
    assert len(found) == 3
    for name, command in found:
        assert all(_key(c) == prep.group(name).key for c in _plan(command)), (name, command)


def test_an_untuned_hint_stays_untuned_where_the_dataset_ships_a_study(
    make_run: RunWriter, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `dml-bench run` trains at the winners of the study a dataset ships, another
    tuning budget: the hint for untuned runs there says --untuned."""
    _record_group(make_run, "dml-bench run --methods proxy_nca --seeds 0,1 --untuned", 0.4)
    monkeypatch.setattr(comparability, "_ships_study", lambda dataset: dataset == "hershey")
    prep = prepare(load_runs(results))
    (name,) = prep.groups
    command = comparability.hint(prep, "triplet_semihard", name)
    assert command.endswith("--untuned --seeds 0,1,2")
    assert all(_key(c) == prep.group(name).key for c in _plan(command))


def test_setup_options_leave_defaults_out() -> None:
    group = Group(
        "hershey (steps=100)",
        "hershey",
        {"steps": 100},
        ("proxy_nca",),
        {
            "dataset": "hershey",
            "steps": 100,
            "lr": 0.001,
            "dataset.jitter": 1.0,
            "dataset.max_classes": 16,
            "dataset.root": "data",  # not a hershey parameter: cannot be set, left out
            "amp": False,
            "tuning_budget": None,
        },
    )
    assert setup_options(group) == [
        "--set amp=false",
        "--set dataset.max_classes=16",
        "--set steps=100",
    ]
