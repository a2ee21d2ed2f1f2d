"""RQ4: final metrics, the paper's numbers beside ours, and tests against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dml_bench.report import rq4_retrieval
from dml_bench.report.paper_numbers import PaperFigure
from dml_bench.report.runs import Prepared, prepare
from dml_bench.store.read import load_runs

from .conftest import assert_numbers_come_from_fields, table_lines, with_roles


def test_significance_is_paired_over_shared_seeds(prep: Prepared) -> None:
    (ds,) = rq4_retrieval.findings(prep)
    assert ds.references == ["proxy_nca"] and ds.baselines == ["triplet_semihard"]
    sig = next(f for f in ds.tests if f.metric == "recall@1")
    ref = stats.ttest_rel([0.60, 0.62, 0.61], [0.50, 0.53, 0.52])
    assert sig.test.test == "paired t-test" and sig.test.p_value == pytest.approx(ref.pvalue)
    assert [t.metric for t in ds.tests] == ["recall@1", "nmi"]
    for finding in ds.tests:
        assert_numbers_come_from_fields(finding)
    rows = {m.label: m for m in ds.methods}
    assert rows["proxy_nca"].values["recall@1"].mean == pytest.approx(0.61)
    assert rows["proxy_nca"].percent["recall@1"] == pytest.approx(61.0)
    assert ds.paper == []  # hershey is not a paper dataset
    section = rq4_retrieval.section(prep, [ds])
    assert not any(line.startswith("Side by side with the paper") for line in section.body)


def test_shows_paper_numbers_for_paper_datasets(make_run, results) -> None:
    for seed in (0, 1):
        make_run(
            method="proxy_nca",
            dataset="cub200",
            seed=seed,
            columns={"recall@1": [0.1, 0.5 + seed / 100]},
        )
    prep = prepare(load_runs(results))
    (ds,) = rq4_retrieval.findings(prep)
    assert {p.method for p in ds.paper} >= {"Proxy-NCA", "Triplet semi-hard"}
    text = "\n".join(rq4_retrieval.section(prep, [ds]).body)
    assert "49.21" in text and "paper (unverified)" in text and "50.50" in text
    assert "triplet_semihard" in text  # the command that would add a baseline
    # The paper's whole table is shown, though these runs logged Recall@1 only.
    table = rq4_retrieval.paper_table(ds)
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    cells = {line.split(" | ")[0].strip("| "): _cells(line) for line in table_lines(table)}
    assert header.split(" | ")[2:7] == ["recall@1", "recall@2", "recall@4", "recall@8", "nmi"]
    assert cells["proxy_nca"][:6] == ["this benchmark (2 seeds)", "50.50", "", "", "", ""]
    assert cells["Struct Clust (clustering)"][:6] == [
        "paper (unverified)",
        "48.18",
        "61.44",
        "71.83",
        "81.92",
        "59.23",
    ]
    assert cells["Proxy-NCA"][5] == "59.53"
    assert "Where the published rows were read" in table and "Kumar et al." in table
    assert "dichotomies/proxy-nca" in table


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row after the first, blanks kept."""
    return [c.strip() for c in line.strip().strip("|").split("|")][1:]


def test_a_row_without_a_metric_shows_a_blank_not_a_zero() -> None:
    """A published row with only Recall@1 (the paper's SOP baselines) and one of ours without
    Recall@2: blank cells, and a verified source printed without the mark."""
    ours = rq4_retrieval.MethodMetrics(
        label="ours",
        seeds=1,
        values={},
        percent={"recall@1": 61.0, "recall@2": float("nan")},
    )
    only_r1 = PaperFigure("sop", "R1 only", "paper", False, {"recall@1": 66.67}, "somewhere")
    full = PaperFigure("sop", "Full", "table 9", True, {"recall@1": 1.0, "recall@2": 2.0}, "it")
    ds = rq4_retrieval.DatasetRetrieval(
        dataset="sop",
        metrics=["recall@1", "recall@2"],
        methods=[ours],
        paper=[only_r1, full],
        references=[],
        baselines=[],
        tests=[],
    )
    rows = {
        line.split(" | ")[0].strip("| "): _cells(line)
        for line in table_lines(rq4_retrieval.paper_table(ds))
    }
    assert rows == {
        "ours": ["this benchmark (1 seeds)", "61.00", ""],
        "R1 only": ["paper (unverified)", "66.67", ""],
        "Full": ["table 9", "1.00", "2.00"],
    }


def test_no_metrics_cannot_answer(make_run, results) -> None:
    make_run(method="proxy_nca", seed=0, columns={"train_only": [1.0, 0.5]})
    prep = prepare(load_runs(results))
    assert rq4_retrieval.findings(prep) == []
    assert "Cannot be answered" in "\n".join(rq4_retrieval.section(prep, []).body)


def test_a_plugin_proxy_method_is_tested_and_answered(benchmark_runs, make_run, results) -> None:
    """A method the report has never heard of, recorded as a proxy method with static
    assignment (the paper's method's role), is tested against the pair baselines and appears in
    the answers beside proxy_nca."""
    finals = [0.70, 0.66, 0.69]
    for seed, final in enumerate(finals):
        make_run(
            method="circle_proxy",
            seed=seed,
            record={"family": "proxy"},
            columns={"recall@1": [0.1, final], "nmi": [0.2, 0.5 + final / 10]},
        )
    unrecorded = prepare(load_runs(results))
    assert rq4_retrieval.findings(unrecorded)[0].references == ["proxy_nca"]  # no role, no test
    prep = prepare(with_roles(load_runs(results), "circle_proxy", None, "static"))
    (ds,) = rq4_retrieval.findings(prep)
    assert ds.references == ["circle_proxy", "proxy_nca"]
    circle = next(t for t in ds.tests if t.reference == "circle_proxy" and t.metric == "recall@1")
    ref = stats.ttest_rel(finals, [0.50, 0.53, 0.52])
    assert circle.test.p_value == pytest.approx(ref.pvalue)
    assert circle.reference_value.mean == pytest.approx(np.mean(finals))
    section = rq4_retrieval.section(prep, [ds])
    answers = [b for b in section.body if b.startswith("**Answer.**")]
    assert any("circle_proxy reached recall@1 0.683" in a for a in answers)
    assert any("proxy_nca reached recall@1 0.610" in a for a in answers)
    table = next(b for b in section.body if b.startswith("### hershey"))
    assert table_lines(table)[0].startswith("| circle_proxy | 3 |")  # proxy methods first


def test_answers_are_one_sentence_per_metric_with_the_tests_in_a_table(prep: Prepared) -> None:
    """a1469a8 wrote one near-identical paragraph per (reference, baseline, metric) test; now
    one sentence per metric names each baseline in the bucket its test puts it in."""
    (ds,) = rq4_retrieval.findings(prep)
    answers = rq4_retrieval.metric_answers(ds.tests)
    assert [(a.reference, a.metric) for a in answers] == [
        ("proxy_nca", "recall@1"),
        ("proxy_nca", "nmi"),
    ]
    for a in answers:
        tests = [t for t in ds.tests if t.metric == a.metric]
        expected_above = [
            (t.other, t.other_value.mean)
            for t in tests
            if t.test.done and t.test.p_value < 0.05 and t.test.difference > 0
        ]
        assert a.above == expected_above
        assert len(a.above + a.below + a.same + a.untested) == len(tests)
        assert_numbers_come_from_fields(a)
    section = rq4_retrieval.section(prep, [ds])
    assert sum(b.startswith("**Answer.**") for b in section.body) == len(answers)


def test_table_cells_and_p_values_against_scipy(prep: Prepared) -> None:
    """The method table's cells are scipy's t-intervals of the final values, the test table's
    p-value is scipy's paired t-test, formatted to 3 significant digits."""
    (ds,) = rq4_retrieval.findings(prep)
    body = rq4_retrieval.section(prep, [ds]).body
    finals = [0.50, 0.53, 0.52]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(finals), scale=stats.sem(finals))
    table = next(b for b in body if b.startswith("### hershey"))
    (row,) = [line for line in table_lines(table) if line.startswith("| triplet_semihard")]
    assert _cells(row)[:2] == ["3", f"{np.mean(finals):.3f} [{low:.3f}, {high:.3f}]"]
    p = stats.ttest_rel([0.60, 0.62, 0.61], finals).pvalue
    tests = next(b for b in body if b.startswith("| reference"))
    recall = next(line for line in table_lines(tests) if "| recall@1 |" in line)
    assert f"| paired t-test | {p:.3g} | p < 0.05 |" in recall
    assert f"| {0.61 - np.mean(finals):.3f} |" in recall


def test_runs_on_different_seeds_get_welchs_test(make_run, results) -> None:  # type: ignore[no-untyped-def]
    proxy, pair = {0: 0.61, 1: 0.64, 2: 0.60}, {3: 0.52, 4: 0.57}
    for method, finals in (("proxy_nca", proxy), ("triplet_semihard", pair)):
        for seed, final in finals.items():
            make_run(method=method, seed=seed, columns={"recall@1": [0.1, final]})
    (ds,) = rq4_retrieval.findings(prepare(load_runs(results)))
    (test,) = ds.tests
    ref = stats.ttest_ind(list(proxy.values()), list(pair.values()), equal_var=False)
    assert test.test.test == "Welch's t-test" and test.test.p_value == pytest.approx(ref.pvalue)
    assert test.test.difference == pytest.approx(np.mean(list(proxy.values())) - 0.545)
