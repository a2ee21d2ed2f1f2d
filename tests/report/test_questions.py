"""Research-question answers: values against independent computations, sentences against values."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dml_bench.report import questions as q
from dml_bench.report.questions import prepare
from dml_bench.store.read import load_runs

from .conftest import recall_curve

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_FIXED_PHRASES = ("about 3x", "Fig. 1, Cars196", "the 5% level", "the paper's 3x")
_FORMATTERS = (
    q.fmt_value,
    q.fmt_pct,
    q.fmt_steps,
    q.fmt_seconds,
    q.fmt_ratio,
    q.fmt_p,
    q.fmt_confidence,
    str,
)


def _leaves(obj: object) -> list[object]:
    if dataclasses.is_dataclass(obj):
        return [x for f in dataclasses.fields(obj) for x in _leaves(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _leaves(v)]
    return [obj]


def assert_numbers_come_from_fields(finding: object) -> None:
    """Every number in the sentence is one of the finding's own values, formatted."""
    text = finding.sentence()  # type: ignore[attr-defined]
    strings = [v for v in _leaves(finding) if isinstance(v, str) and v]
    for s in sorted(strings, key=len, reverse=True) + list(_FIXED_PHRASES):
        text = text.replace(s, " ")
    allowed = set()
    for value in _leaves(finding):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for fmt in _FORMATTERS:
                allowed.update(_NUMBER.findall(fmt(value)))
    found = _NUMBER.findall(text)
    assert found, finding
    assert set(found) <= allowed, (set(found) - allowed, finding.sentence())  # type: ignore[attr-defined]


@pytest.fixture
def prep(results: Path, benchmark_runs: dict) -> q.Prepared:
    return prepare(load_runs(results))


def test_rq1_bound_values_and_sentence(prep: q.Prepared) -> None:
    section = q.rq1_bound(prep)
    nca = next(f for f in section.findings if f.loss == "NCA")
    trip = next(f for f in section.findings if f.loss == "triplet")
    # conftest: gap_i = 1.0 - 0.1 i over steps 0..800; quarters are steps <= 200 and >= 600
    assert nca.held.mean == 1.0 and nca.held.n == 3
    assert nca.gap_first == pytest.approx(np.mean([1.0, 0.9, 0.8]))
    assert nca.gap_last == pytest.approx(np.mean([0.4, 0.3, 0.2]))
    assert nca.eps_max_first == pytest.approx(np.mean([1.4, 1.35, 1.3]))
    assert trip.held.mean == pytest.approx(8 / 9)
    for finding in section.findings:
        assert_numbers_come_from_fields(finding)
    assert "rq1_bound_hershey" in section.figures
    assert "narrowed" in nca.sentence()


def _steps_to_target(curve: list[float], fraction: float) -> int:
    for i, v in enumerate(curve):
        if v >= fraction * max(curve):
            return 100 * i
    raise AssertionError


def test_rq2_speedup_against_brute_force(prep: q.Prepared) -> None:
    section = q.rq2_convergence(prep, target_fraction=0.9)
    speed = next(
        f for f in section.findings if f.proxy == "proxy_nca" and f.pair == "triplet_semihard"
    )
    proxy = [
        _steps_to_target(recall_curve(v, rate=1.0 + 0.1 * s), 0.9)
        for s, v in enumerate([0.60, 0.62, 0.61])
    ]
    pair = [
        _steps_to_target(recall_curve(v, rate=0.3 + 0.1 * s), 0.9)
        for s, v in enumerate([0.50, 0.53, 0.52])
    ]
    assert speed.steps.value == pytest.approx(np.mean(pair) / np.mean(proxy))
    assert speed.seconds.value == pytest.approx(speed.steps.value)  # elapsed = 0.5 * step
    assert speed.steps.low <= speed.steps.value <= speed.steps.high
    assert_numbers_come_from_fields(speed)
    assert {"rq2_recall_vs_step_hershey", "rq2_recall_vs_time_hershey"} <= set(section.figures)
    fig = section.figures["rq2_recall_vs_step_hershey"]
    assert len(fig.axes[0].get_lines()) == 5  # five method variants


def test_rq3_order_values(prep: q.Prepared) -> None:
    section = q.rq3_order(prep)
    (finding,) = section.findings
    ends = [0.6 + 0.03 * 8 + 0.01 * s for s in range(3)]
    assert finding.end.mean == pytest.approx(np.mean(ends))
    low, high = stats.t.interval(0.95, 2, loc=np.mean(ends), scale=stats.sem(ends))
    assert (finding.end.low, finding.end.high) == pytest.approx((low, high))
    assert finding.start.mean == pytest.approx(0.61)
    assert_numbers_come_from_fields(finding)


def test_rq4_significance_is_paired_over_shared_seeds(prep: q.Prepared) -> None:
    section = q.rq4_retrieval(prep)
    sig = next(f for f in section.findings if f.metric == "recall@1")
    assert sig.other == "triplet_semihard"  # baselines are pair methods only
    ref = stats.ttest_rel([0.60, 0.62, 0.61], [0.50, 0.53, 0.52])
    assert sig.test.test == "paired t-test" and sig.test.p_value == pytest.approx(ref.pvalue)
    for finding in section.findings:
        assert_numbers_come_from_fields(finding)
    assert not any("paper" in line and "Proxy-NCA" in line for line in section.body)


def test_rq4_shows_paper_numbers_for_paper_datasets(make_run, results) -> None:
    for seed in (0, 1):
        make_run(
            method="proxy_nca",
            dataset="cub200",
            seed=seed,
            columns={"recall@1": [0.1, 0.5 + seed / 100]},
        )
    section = q.rq4_retrieval(prepare(load_runs(results)))
    text = "\n".join(section.body)
    assert "49.21" in text and "paper (unverified)" in text and "50.50" in text
    assert "triplet_semihard" in text  # the command that would add a baseline


def test_rq5_sweep_and_missing_sweep(prep: q.Prepared, make_run, results) -> None:
    section = q.rq5_assignment(prep)
    finding = next(f for f in section.findings if f.metric == "recall@1")
    assert finding.static_label == "proxy_nca"
    assert finding.dynamic_label == "proxy_nca_dynamic[proxies_per_class=1.0]"
    assert finding.dynamic_value.mean == pytest.approx(np.mean([0.58, 0.59]))
    assert_numbers_come_from_fields(finding)
    fig = section.figures["rq5_proxies_hershey"]
    assert [len(ax.get_lines()) for ax in fig.axes][0] >= 2
    assert q.SWEEP_COMMAND in "\n".join(section.body)  # static has one value only


def test_unanswerable_questions_say_which_command(tmp_path: Path, make_run, results) -> None:
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    rq1 = "\n".join(q.rq1_bound(prep).body)
    assert "Cannot be answered" in rq1 and "dml-bench run --methods proxy_nca" in rq1
    rq2 = q.rq2_convergence(prep, 0.9)
    assert "proxy_nca,triplet_semihard" in "\n".join(rq2.body)
    (single,) = rq2.findings
    assert "one seed, so no interval" in single.sentence()
    assert_numbers_come_from_fields(single)
    assert "Cannot be answered" in "\n".join(q.rq3_order(prep).body)
    assert q.SWEEP_COMMAND in "\n".join(q.rq5_assignment(prep).body)
    assert math.isnan(single.steps.low)


def test_qualitative_figure_blocks_per_method(prep: q.Prepared) -> None:
    section = q.qualitative(prep, n_queries=2, top_k=3)
    fig = section.figures["qualitative_hershey"]
    assert len(fig.axes) == 2 * 2 * 4  # proxy_nca and triplet_semihard have retrievals


#: Phrases of the answers that name no measured value (confidence level, the paper's claim).
_NOT_MEASURED = (
    "95% bootstrap CI",
    "95% CI",
    "about 3x",
    "Fig. 1, Cars196",
    "the 5% level",
    "the paper's 3x",
)


def _table_numbers(section: q.Section) -> set[str]:
    cells = set()
    for block in section.body:
        for line in block.splitlines():
            if line.startswith("|"):
                cells.update(_NUMBER.findall(line))
    return cells


def test_every_number_of_an_answer_stands_in_its_section_table(prep: q.Prepared) -> None:
    """The prose and the tables of report.md cannot disagree: each number of each generated
    answer is printed, formatted the same way, in a table of the same section."""
    checked = 0
    for section in q.all_sections(prep, target_fraction=0.9):
        cells = _table_numbers(section)
        for line in (b for b in section.body if b.startswith("**Answer.**")):
            text = line
            for phrase in _NOT_MEASURED:
                text = text.replace(phrase, " ")
            numbers = set(_NUMBER.findall(text))
            assert numbers, line
            assert numbers <= cells, (section.key, numbers - cells, line)
            checked += 1
    assert checked >= 5  # RQ1 (two losses), RQ2, RQ3, RQ4 and RQ5 each answer something


@pytest.mark.parametrize(
    ("label", "series"),
    [
        ("proxy_nca", "proxy_nca"),
        ("proxy_nca[proxies_per_class=2]", "proxy_nca"),
        ("proxy_nca_dynamic[num_proxies=0.5,scale=3.0]", "proxy_nca_dynamic[scale=3.0]"),
        (
            "proxy_nca[m_per_class=4,proxies_per_class=2] [m_per_class:4]",
            "proxy_nca[m_per_class=4] [m_per_class:4]",
        ),
        ("proxy_nca [random]", "proxy_nca [random]"),
    ],
)
def test_sweep_series_drops_only_the_proxy_count(label: str, series: str) -> None:
    assert q.sweep_series(label) == series


def test_rq5_keeps_variants_at_the_same_proxy_count_apart(make_run, results) -> None:
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
    section = q.rq5_assignment(prepare(load_runs(results)))
    table = next(b for b in section.body if "| variant |" in b)
    body = [line for line in table.splitlines() if line.startswith("|")][2:]  # after the header
    rows = {line.split(" | ")[0].strip("| "): line for line in body}
    assert set(rows) == {v for v, _, _ in finals}
    assert "0.610 [" in rows["proxy_nca"] and "0.420 [" in rows["proxy_nca[m_per_class=4]"]
    ax = section.figures["rq5_proxies_hershey"].axes[0]
    lines = {text.get_text() for text in ax.get_legend().get_texts()}
    assert lines == {"proxy_nca", "proxy_nca[m_per_class=4]", "proxy_nca_dynamic"}
    finding = next(f for f in section.findings if f.metric == "recall@1")
    assert (finding.static_label, finding.static_value.mean) == ("proxy_nca", pytest.approx(0.61))


@pytest.mark.parametrize(
    ("first", "last", "trend"),
    [
        (2.9, -1.1, "changed sign"),
        (-0.5, 0.2, "changed sign"),
        (2.9, 0.3, "narrowed"),
        (-0.5, -0.1, "narrowed"),
        (0.3, 0.9, "did not narrow"),
        (float("nan"), 0.1, "cannot tell"),
    ],
)
def test_gap_trend_tells_a_sign_change_from_narrowing(
    first: float, last: float, trend: str
) -> None:
    assert q.gap_trend(first, last) == trend


def test_qualitative_figure_shows_the_plain_methods_before_sweep_variants(
    make_run, results
) -> None:
    variants = [f"proxy_nca[proxies_per_class={k}]" for k in (2, 4, 8, 16, 32, 64)]
    for variant in [*variants, "proxy_nca", "triplet_semihard"]:
        make_run(
            method=variant.split("[")[0],
            variant=variant,
            seed=0,
            columns={"recall@1": [0.1, 0.5]},
            retrievals=True,
        )
    fig = q.qualitative(prepare(load_runs(results)), n_queries=1, top_k=2, max_methods=3).figures[
        "qualitative_hershey"
    ]
    rows = [ax.get_ylabel().split("\n")[0] for ax in fig.axes if ax.get_ylabel()]
    # the plain methods, then the first variant in the report's label order (string order)
    assert rows == ["proxy_nca", "triplet_semihard", "proxy_nca[proxies_per_class=16]"]
