"""The Tuning section and the tuning notes of RQ2/RQ4, from hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

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
    # 4 trials: 2 complete and 1 pruned fill the budget of 3; the failed one is apart (a4124b7
    # printed "3 (1 pruned, 1 failed)", which reads as if the failed trial were one of the 3)
    assert "| 3 finished (1 pruned), 1 failed |" in text
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


def with_defaults(
    results: Path, group: str, defaults: dict[str, object] | None, best_trial: int = 2
) -> None:
    """``write_record``'s study as a schema-2 record whose nca ``defaults`` entry is given."""
    write_record(results, group)
    path = results / "tuning" / group / "study.json"
    record = json.loads(path.read_text())
    record["schema_version"] = 2
    record["methods"]["nca"]["defaults"] = defaults
    record["methods"]["nca"]["best"]["trial"] = best_trial
    path.write_text(json.dumps(record))


DEFAULTS = {"params": {"scale": 2.0}, "outside_space": {}, "enqueued": True, "reason": None}


def test_the_section_shows_the_defaults_score_next_to_the_best_and_the_gain(
    tmp_path: Path,
) -> None:
    from tests.report.conftest import assert_numbers_come_from_fields, table_lines

    entry = {**DEFAULTS, "trial": 0, "state": "complete", "value": 0.5, "last_step": 12}
    with_defaults(tmp_path, "g", entry)
    (f,) = findings(tmp_path)
    assert f.defaults is not None and f.gain() == pytest.approx(0.2)
    assert "its defaults (trial 0) scored 0.500" in f.sentence()
    assert_numbers_come_from_fields(f)
    text = "\n".join(section([f]).body)
    (row,) = table_lines(text)
    assert "| 0.500 (trial 0) | 0.700 (trial 2) | +0.200 |" in row
    # the defaults trial is drawn on the history figure (an open diamond at its score)
    fig = history_figure([f])
    offsets = [c.get_offsets().tolist() for c in fig.axes[0].collections]
    assert [[0.0, 0.5]] in offsets


@pytest.mark.parametrize(
    ("entry", "best", "cell", "words"),
    [
        (
            {**DEFAULTS, "trial": 0, "state": "complete", "value": 0.7, "last_step": 12},
            0,
            "| 0.700 (trial 0) | 0.700 (trial 0) | 0 (the defaults won) |",
            "the defaults are the best trial",
        ),
        (
            {**DEFAULTS, "trial": 4, "state": "pruned", "value": 0.31, "last_step": 6},
            2,
            "| pruned at step 6 (trial 4, last 0.310) | 0.700 (trial 2) | - |",
            "its defaults trial (trial 4) was pruned at step 6",
        ),
        (
            {**DEFAULTS, "trial": 0, "state": "fail", "value": None, "last_step": None},
            2,
            "| failed (trial 0) |",
            "its defaults trial (trial 0) failed",
        ),
        (
            {
                **DEFAULTS,
                "params": {"scale": 0.5},
                "outside_space": {"scale": "0.5 is below the range's low bound 1"},
                "enqueued": False,
                "reason": "outside the search space",
                "trial": None,
                "state": None,
                "value": None,
                "last_step": None,
            },
            2,
            "| not tried (outside the search space: scale=0.5 0.5 is below the range's low "
            "bound 1) |",
            "were not tried as a trial (outside the search space",
        ),
        (
            {**DEFAULTS, "enqueued": False, "reason": "--no-defaults-trial", "trial": None},
            2,
            "| not tried (--no-defaults-trial) |",
            "not tried as a trial (--no-defaults-trial)",
        ),
        (None, 2, "| not recorded (study made before defaults trials) |", "made before"),
    ],
)
def test_what_became_of_the_defaults_is_said(
    tmp_path: Path, entry: dict[str, object] | None, best: int, cell: str, words: str
) -> None:
    with_defaults(tmp_path, "g", entry, best_trial=best)
    (f,) = findings(tmp_path)
    assert cell in "\n".join(section([f]).body)
    assert words in f.sentence()


def test_the_shipped_glyph_study_tried_every_methods_defaults() -> None:
    """The study shipped with the package gave each method its defaults as trial 0, so each
    shipped winner scored at least as well as the hand-picked values on validation."""
    from dml_bench.data import DATASETS

    record = json.loads(Path(str(DATASETS.get("hershey").tuned_defaults)).read_text())
    assert record["schema_version"] == 2
    for method, entry in record["methods"].items():
        defaults = entry["defaults"]
        assert defaults["enqueued"] and defaults["trial"] == 0, method
        assert defaults["state"] == "complete", method
        assert entry["best"]["value"] >= defaults["value"], method
        first = next(t for t in entry["trials"] if t["number"] == 0)
        assert first["defaults"] and first["params"] == defaults["params"], method


def test_the_old_study_record_without_defaults_still_reads(tmp_path: Path) -> None:
    """The glyph study shipped before defaults trials (schema 1, kept in tests/report/data):
    the report and ``run --tuned`` read it as before, its defaults shown as not recorded."""
    import shutil

    from dml_bench.tune.record import read_studies

    shipped = Path(__file__).parent / "data" / "glyphs-defaults-schema1.json"
    record = json.loads(shipped.read_text())
    assert record["schema_version"] == 1
    assert all("defaults" not in m for m in record["methods"].values())
    (tmp_path / "tuning" / record["group"]).mkdir(parents=True)
    shutil.copy(shipped, tmp_path / "tuning" / record["group"] / "study.json")
    assert [r["group"] for r in read_studies(tmp_path)] == [record["group"]]
    found = findings(tmp_path)
    assert {f.method for f in found} == set(record["methods"])
    for f in found:
        assert f.defaults is None and f.gain() is None
        assert f.best_value == record["methods"][f.method]["best"]["value"]
    text = "\n".join(section(found).body)
    assert text.count("not recorded (study made before defaults trials)") == len(found)

    from dml_bench.train.plan import ExperimentRequest, plan_runs
    from dml_bench.tune.tuned import apply_tuning

    (config,) = apply_tuning(plan_runs(ExperimentRequest(methods=("nca",))), tmp_path, None)
    assert config.tuning is not None and config.tuning.study == record["group"]
    assert config.method_config.scale == record["methods"]["nca"]["best"]["params"]["scale"]  # type: ignore[attr-defined]
