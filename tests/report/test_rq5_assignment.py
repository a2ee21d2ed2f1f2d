"""RQ5: the static/dynamic sweep, roles from the records, and a plugin method taking part."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dml_bench.report import rq5_assignment
from dml_bench.report.runs import Prepared, prepare
from dml_bench.report.text import SWEEP_METHODS, SWEEP_SETTINGS
from dml_bench.store.read import load_runs

from .conftest import assert_numbers_come_from_fields, table_lines, with_roles


def test_sweep_and_missing_sweep(prep: Prepared) -> None:
    (ds,) = rq5_assignment.findings(prep)
    assert not ds.complete  # static has one proxy count only
    assert [(r.label, r.count) for r in ds.rows] == [
        ("proxy_nca", 1.0),
        ("proxy_nca_dynamic[proxies_per_class=0.5]", 0.5),
        ("proxy_nca_dynamic[proxies_per_class=1.0]", 1.0),
        ("proxy_nca_dynamic[proxies_per_class=2.0]", 2.0),
    ]
    assert {r.series for r in ds.rows} == {"proxy_nca", "proxy_nca_dynamic"}
    finding = next(f for f in ds.best if f.metric == "recall@1")
    assert finding.static_label == "proxy_nca"
    assert finding.dynamic_label == "proxy_nca_dynamic[proxies_per_class=1.0]"
    assert finding.dynamic_value.mean == pytest.approx(np.mean([0.58, 0.59]))
    assert_numbers_come_from_fields(finding)
    section = rq5_assignment.section(prep, [ds])
    fig = section.figures["rq5_proxies_hershey"]
    assert [len(ax.get_lines()) for ax in fig.axes][0] >= 2
    body = "\n".join(section.body)
    assert f"dml-bench run --methods {SWEEP_METHODS} --dataset hershey " in body
    assert SWEEP_SETTINGS in body


def test_collapse_diagnostic_of_the_dynamic_runs(prep: Prepared) -> None:
    """conftest: every dynamic run ends with 10 + seed proxies in use and 0.05 (seed + 1) of its
    different-class pairs sharing a proxy (seeds 0 and 1)."""
    (ds,) = rq5_assignment.findings(prep)
    assert [f.label for f in ds.collapse] == [r.label for r in ds.rows[1:]]
    for finding in ds.collapse:
        assert finding.in_use.mean == pytest.approx(10.5) and finding.in_use.n == 2
        assert finding.shared.mean == pytest.approx(0.075)
        assert_numbers_come_from_fields(finding)
    assert "7.5% of its different-class pairs sharing a proxy" in ds.collapse[0].sentence()
    section = rq5_assignment.section(prep, [ds])
    table = next(b for b in section.body if "| variant" in b)
    assert "| proxies in use | different-class pairs sharing a proxy |" in table
    rows = table_lines(table)
    assert rows[0].endswith("| n/a | n/a |")  # static proxy_nca logged none here
    assert "| 7.5% [" in rows[1]
    assert sum("ended with" in line for line in section.body) == 3


def test_no_assignment_method_cannot_answer(make_run, results) -> None:
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    assert rq5_assignment.findings(prep) == []
    body = "\n".join(rq5_assignment.section(prep, []).body)
    assert f"--methods {SWEEP_METHODS} --dataset hershey" in body and SWEEP_SETTINGS in body


def test_keeps_variants_at_the_same_proxy_count_apart(make_run, results) -> None:
    """proxy_nca and proxy_nca[m_per_class=4] both have 1 proxy per class: two rows, two lines."""
    finals = {
        ("proxy_nca", 1, None): [0.60, 0.62],
        ("proxy_nca[proxies_per_class=2]", 2, None): [0.55, 0.57],
        ("proxy_nca[m_per_class=4]", 1, 4): [0.40, 0.44],
        ("proxy_nca_dynamic", 1, None): [0.30, 0.31],
    }
    for (variant, ppc, m), values in finals.items():
        for seed, final in enumerate(values):
            make_run(
                method=variant.split("[")[0],
                variant=variant,
                seed=seed,
                method_config={"m_per_class": m, "proxies_per_class": ppc},
                sampler="random" if m is None else f"m_per_class:{m}",
                columns={"recall@1": [0.1, final]},
            )
    prep = prepare(load_runs(results))
    section = rq5_assignment.section(prep, rq5_assignment.findings(prep))
    table = next(b for b in section.body if "| variant |" in b)
    rows = {line.split(" | ")[0].strip("| "): line for line in table_lines(table)}
    assert set(rows) == {v for v, _, _ in finals}
    assert "0.610 [" in rows["proxy_nca"] and "0.420 [" in rows["proxy_nca[m_per_class=4]"]
    ax = section.figures["rq5_proxies_hershey"].axes[0]
    lines = {text.get_text() for text in ax.get_legend().get_texts()}
    assert lines == {"proxy_nca", "proxy_nca[m_per_class=4]", "proxy_nca_dynamic"}
    finding = next(f for f in section.findings if f.metric == "recall@1")
    assert (finding.static_label, finding.static_value.mean) == ("proxy_nca", pytest.approx(0.61))


def test_a_plugin_method_takes_part_by_its_recorded_roles(
    benchmark_runs, make_run, results
) -> None:
    """``circle_proxy`` (unknown to the registry, recorded as a static proxy method counting its
    proxies in ``circles_per_class``) is a point of the sweep and can be the best static one."""
    values = {1: [0.70, 0.72], 3: [0.75, 0.77]}
    for count, finals in values.items():
        for seed, final in enumerate(finals):
            variant = "circle_proxy" if count == 1 else f"circle_proxy[circles_per_class={count}]"
            make_run(
                method="circle_proxy",
                variant=variant,
                seed=seed,
                record={"family": "proxy"},
                method_config={"m_per_class": None, "circles_per_class": count},
                columns={"recall@1": [0.1, final], "nmi": [0.2, 0.4]},
            )
    table = with_roles(load_runs(results), "circle_proxy", "circles_per_class", "static")
    prep = prepare(table)
    assert prep.roles["circle_proxy"].proxy_assignment == "static"
    assert prep.roles["proxy_nca"].proxy_count_field == "proxies_per_class"  # from the registry
    (ds,) = rq5_assignment.findings(prep)
    circle = [r for r in ds.rows if r.label.startswith("circle_proxy")]
    assert [(r.count, r.series) for r in circle] == [(1.0, "circle_proxy"), (3.0, "circle_proxy")]
    assert ds.count_name == "circles per class / proxies per class"
    best = next(f for f in ds.best if f.metric == "recall@1")
    assert best.static_label == "circle_proxy[circles_per_class=3]"
    assert best.static_value.mean == pytest.approx(0.76)
    section = rq5_assignment.section(prep, [ds])
    answers = [b for b in section.body if b.startswith("**Answer.**")]
    assert any("best static assignment (circle_proxy[circles_per_class=3])" in a for a in answers)
    assert not any("incomplete" in b for b in section.body)  # circle_proxy swept, dynamic too


def test_an_unknown_method_without_recorded_roles_stays_out(make_run, results) -> None:
    for seed in (0, 1):
        make_run(
            method="circle_proxy",
            seed=seed,
            record={"family": "proxy"},
            method_config={"m_per_class": None, "proxies_per_class": 1},
            columns={"recall@1": [0.1, 0.5]},
        )
    assert rq5_assignment.findings(prepare(load_runs(results))) == []


def test_roles_recorded_by_the_runs_are_read_from_the_files(make_run, results) -> None:
    for seed in (0, 1):
        make_run(
            method="circle_proxy",
            seed=seed,
            record={
                "family": "proxy",
                "proxy_count_field": "circles_per_class",
                "proxy_assignment": "dynamic",
            },
            method_config={"m_per_class": None, "circles_per_class": 2},
            columns={"recall@1": [0.1, 0.5]},
        )
    prep = prepare(load_runs(results))
    assert prep.roles["circle_proxy"].proxy_assignment == "dynamic"
    (ds,) = rq5_assignment.findings(prep)
    assert [(r.label, r.assignment, r.count) for r in ds.rows] == [("circle_proxy", "dynamic", 2.0)]
    assert ds.best == []  # no static side to compare with


def test_collapse_cells_are_scipys_intervals_cut_at_the_range(prep: Prepared) -> None:
    """conftest: the dynamic runs end with 10 and 11 proxies in use and 5% and 10% of
    different-class pairs sharing one (seeds 0, 1). The share's t-interval reaches below 0%:
    cut there and marked."""
    from scipy import stats

    (ds,) = rq5_assignment.findings(prep)
    section = rq5_assignment.section(prep, [ds])
    table = next(b for b in section.body if "| variant" in b)
    row = table_lines(table)[1]
    in_use = stats.t.interval(0.95, 1, loc=10.5, scale=stats.sem([10.0, 11.0]))
    shared = stats.t.interval(0.95, 1, loc=0.075, scale=stats.sem([0.05, 0.10]))
    assert shared[0] < 0
    assert row.endswith(
        f"| 10.500 [{in_use[0]:.3f}, {in_use[1]:.3f}] "
        f"| 7.5% [0.0% (clipped), {100 * shared[1]:.1f}%] |"
    )


def _assignment(static: tuple[float, float, float, int], dynamic: tuple[float, float, float, int]):  # type: ignore[no-untyped-def]
    from dml_bench.report.stats import Interval

    return rq5_assignment.AssignmentFinding(
        "hershey", "recall@1", "proxy_nca", Interval(*static), "dyn", Interval(*dynamic)
    )


@pytest.mark.parametrize(
    ("static", "dynamic", "words"),
    [
        # the example report: 0.832 [0.823, 0.840] against 0.701 [0.685, 0.718]
        ((0.832, 0.823, 0.840, 3), (0.701, 0.685, 0.718, 3), "static assignment did better"),
        # conftest: 0.610 [0.585, 0.635] against 0.585 [0.521, 0.649]
        (
            (0.610, 0.585, 0.635, 3),
            (0.585, 0.521, 0.649, 2),
            "static assignment had the higher mean, but the two intervals overlap",
        ),
        ((0.5, 0.45, 0.55, 3), (0.7, 0.65, 0.75, 3), "dynamic assignment did better"),
        ((0.6, math.nan, math.nan, 1), (0.5, 0.45, 0.55, 3), "with one seed there is no interval"),
        ((0.6001, 0.5, 0.7, 3), (0.5999, 0.5, 0.7, 3), "the two did equally well"),
    ],
)
def test_did_better_only_when_the_intervals_do_not_overlap(static, dynamic, words) -> None:  # type: ignore[no-untyped-def]
    """main wrote "static assignment did better" for 0.610 [0.585, 0.635] against 0.585
    [0.521, 0.649]: the words now follow the intervals the sentence prints."""
    finding = _assignment(static, dynamic)
    assert words in finding.sentence()
    assert_numbers_come_from_fields(finding)


def test_the_fixtures_best_static_and_dynamic_overlap(prep: Prepared) -> None:
    (ds,) = rq5_assignment.findings(prep)
    recall = next(f for f in ds.best if f.metric == "recall@1")
    assert recall.static_value.low < recall.dynamic_value.high  # scipy's intervals overlap
    assert "had the higher mean, but the two intervals overlap" in recall.sentence()
