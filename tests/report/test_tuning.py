"""The Tuning section and the tuning notes of RQ2/RQ4, from hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dml_bench.report.tuning import budget_note, findings, history_figure, section


def write_record(results: Path, group: str) -> None:
    trials = [
        {"number": 0, "state": "complete", "value": 0.5, "params": {"scale": 2.0}},
        {"number": 1, "state": "pruned", "value": None, "params": {"scale": 9.0}},
        {"number": 2, "state": "complete", "value": 0.7, "params": {"scale": 3.0}},
        {"number": 3, "state": "fail", "value": None, "params": {"scale": 1.0}},
    ]
    record = {
        "schema_version": 1,
        "group": group,
        "dataset": "hershey",
        "budget": {"trials": 3, "steps": 12, "metric": "map@r"},
        "budget_text": "3 trials x 12 steps (1 of 4 folds, validation map@r)",
        "methods": {
            "nca": {
                "counts": {"complete": 2, "pruned": 1, "failed": 1},
                "best": {"trial": 2, "value": 0.7, "params": {"scale": 3.0}},
                "trials": trials,
            }
        },
    }
    path = results / "tuning" / group / "study.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))


def test_findings_and_section_state_the_budget_and_the_best_trial(tmp_path: Path) -> None:
    write_record(tmp_path, "g")
    (tmp_path / "tuning" / "broken").mkdir()
    (tmp_path / "tuning" / "broken" / "study.json").write_text("{not json")
    found = findings(tmp_path)
    assert len(found) == 1
    f = found[0]
    assert (f.complete, f.pruned, f.failed, f.best_trial, f.best_value) == (2, 1, 1, 2, 0.7)
    assert f.values == ((0, 0.5), (2, 0.7))  # completed trials only
    assert "best validation map@r 0.700 at trial 2 (scale=3)" in f.sentence()
    result = section(found)
    text = "\n".join(result.body)
    assert "3 trials x 12 steps" in text and "0.700 (trial 2)" in text
    assert "3 (1 pruned, 1 failed)" in text
    assert list(result.figures) == ["tuning_history_g"]


def test_history_figure_draws_the_best_so_far(tmp_path: Path) -> None:
    write_record(tmp_path, "g")
    fig = history_figure(findings(tmp_path))
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == [0.5, 0.7]


def runs(studies: list[str], budgets: list[str]) -> pd.DataFrame:
    labels = [f"m{i}" for i in range(len(studies))]
    return pd.DataFrame({"label": labels, "tuning_study": studies, "tuning_budget": budgets})


def test_budget_note_says_plainly_whether_the_runs_were_tuned_alike() -> None:
    assert "untuned: defaults" in budget_note(runs(["", ""], ["", ""]))
    equal = budget_note(runs(["s", "s"], ["3 trials", "3 trials"]))
    assert "All compared runs were tuned with an equal budget: study `s`, 3 trials" in equal
    mixed = budget_note(runs(["s", ""], ["3 trials", ""]))
    assert "not tuned with equal budgets" in mixed and "untuned: defaults: m1" in mixed
    two = budget_note(runs(["s", "t"], ["3 trials", "5 trials"]))
    assert "not tuned with equal budgets" in two and "`t`, 5 trials" in two
    # records written before tuning existed have no tuning columns: untuned
    assert "untuned: defaults" in budget_note(pd.DataFrame({"label": ["a"], "variant": ["a"]}))
