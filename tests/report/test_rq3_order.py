"""RQ3: order agreement at the first and last row, against scipy's t-interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dml_bench.report import rq3_order
from dml_bench.report.runs import Prepared, prepare
from dml_bench.report.stats import mean_ci
from dml_bench.store.read import load_runs

from .conftest import assert_numbers_come_from_fields


def test_findings_values(prep: Prepared) -> None:
    (finding,) = rq3_order.findings(prep)
    ends = [0.6 + 0.03 * 8 + 0.01 * s for s in range(3)]
    assert finding.end.mean == pytest.approx(np.mean(ends))
    low, high = stats.t.interval(0.95, 2, loc=np.mean(ends), scale=stats.sem(ends))
    assert (finding.end.low, finding.end.high) == pytest.approx((low, high))
    assert finding.start.mean == pytest.approx(0.61)
    assert_numbers_come_from_fields(finding)


def test_section(prep: Prepared) -> None:
    section = rq3_order.section(prep, rq3_order.findings(prep))
    assert "rq3_order_hershey" in section.figures
    assert any(b.startswith("**Answer.** For proxy_nca on hershey") for b in section.body)


def test_without_order_agreement_cannot_answer(make_run, results) -> None:
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    assert rq3_order.findings(prep) == []
    assert "Cannot be answered" in "\n".join(rq3_order.section(prep, []).body)


def _dynamic_runs(make_run, ties: list[float] | None) -> None:
    for seed in range(2):
        columns = {
            "recall@1": [0.2, 0.5, 0.6],
            "order_agreement": [0.27 + 0.01 * seed, 0.8, 0.97],
        }
        if ties is not None:
            columns["order_ties"] = [t + 0.01 * seed for t in ties]
        make_run(method="proxy_nca_dynamic", seed=seed, columns=columns)


def test_agreement_below_chance_is_explained_by_the_ties_it_logged(make_run, results) -> None:
    _dynamic_runs(make_run, [0.60, 0.10, 0.02])
    prep = prepare(load_runs(results))
    (finding,) = rq3_order.findings(prep)
    assert finding.ties_start is not None and finding.ties_end is not None
    assert finding.ties_start.mean == pytest.approx(0.605)
    assert finding.ties_end.mean == pytest.approx(0.025)
    text = "\n".join(rq3_order.section(prep, [finding]).body)
    assert "below chance, and ties can account for it: 60.5% of the triplets had p(y)" in text
    assert "| 60.5% | 2.5% |" in text  # the ties columns of the table
    assert_numbers_come_from_fields(finding)


def test_below_chance_without_logged_ties_says_it_cannot_tell(make_run, results) -> None:
    _dynamic_runs(make_run, None)
    prep = prepare(load_runs(results))
    (finding,) = rq3_order.findings(prep)
    assert finding.ties_start is None
    assert "did not log `order_ties`" in finding.sentence()


def test_above_chance_needs_no_explanation(prep: Prepared) -> None:
    (finding,) = rq3_order.findings(prep)  # starts at 0.61
    assert finding.below_chance() == ""


def _variant_runs(make_run, variant: str, starts: list[float], ties: list[float]) -> None:  # type: ignore[no-untyped-def]
    method = variant.split("[")[0]
    for seed, (start, tie) in enumerate(zip(starts, ties, strict=True)):
        make_run(
            method=method,
            variant=variant,
            seed=seed,
            columns={
                "recall@1": [0.2, 0.6],
                "order_agreement": [start, 0.95],
                "order_ties": [tie, 0.01 if tie else 0.0],
            },
        )


def test_every_variant_that_starts_below_chance_is_explained(make_run, results) -> None:  # type: ignore[no-untyped-def]
    """The example report explained agreement below chance only for the headline method
    (static proxy_nca, which starts at 50.6%, so never), while four dynamic variants started
    at 27-29% with 82% ties: each such variant now gets its answer, the headline still first,
    and a variant above chance gets none."""
    _variant_runs(make_run, "proxy_nca", [0.55, 0.52], [0.0, 0.0])
    _variant_runs(make_run, "proxy_nca_dynamic", [0.27, 0.29], [0.80, 0.84])
    _variant_runs(make_run, "proxy_nca_dynamic[proxies_per_class=2.0]", [0.20, 0.30], [0.9, 0.7])
    _variant_runs(make_run, "proxy_nca_dynamic[proxies_per_class=0.5]", [0.60, 0.62], [0.1, 0.1])
    prep = prepare(load_runs(results))
    found = rq3_order.findings(prep)
    said = rq3_order.stated(found, prep.headline_labels)
    assert [f.label for f in said] == [
        "proxy_nca",
        "proxy_nca_dynamic",
        "proxy_nca_dynamic[proxies_per_class=2.0]",
    ]
    answers = [b for b in rq3_order.section(prep, found).body if b.startswith("**Answer.**")]
    assert len(answers) == 3 and answers[0].startswith("**Answer.** For proxy_nca on")
    assert (
        "against 28.0% at the first evaluation. That is below chance, and ties can " in answers[1]
    )
    assert "82.0% of the triplets had p(y) = p(z) there" in answers[1]
    assert "80.0% of the triplets had p(y) = p(z) there" in answers[2]
    assert "at the end 1.0% were tied" in answers[2]
    for finding in said:
        assert_numbers_come_from_fields(finding)


def test_ties_too_few_to_explain_agreement_below_chance_are_not_blamed(make_run, results) -> None:  # type: ignore[no-untyped-def]
    """A static variant at 40% agreement with no ties: main said "below chance because 0.0% of
    the triplets had p(y) = p(z)"; no tie can explain it, so the sentence says the proxies
    reversed the order of most untied triplets."""
    _variant_runs(make_run, "proxy_nca[scale=3]", [0.40, 0.42], [0.0, 0.0])
    prep = prepare(load_runs(results))
    (finding,) = rq3_order.findings(prep)
    assert finding.starts_below_chance and not finding.ties_can_explain
    sentence = finding.sentence()
    assert "ties do not account for it: only 0.0% of the triplets" in sentence
    assert "reversed the order of most of the untied triplets" in sentence
    assert "because" not in sentence
    assert_numbers_come_from_fields(finding)


@pytest.mark.parametrize(
    ("agreement", "ties"),
    [(0.3, 0.4), (0.3, 0.39), (0.27, 0.816), (0.45, 0.05), (0.45, 0.15), (0.1, 0.0), (0.0, 1.0)],
)
def test_whether_ties_can_explain_matches_a_search_over_tie_agreement(
    agreement: float, ties: float
) -> None:
    """Ties can explain agreement a below chance when some share of the ties agreeing, a_t in
    [0, 1], leaves the untied triplets agreeing on at least half of theirs:
    (a - t a_t) / (1 - t) >= 0.5 (every untied triplet agreeing is allowed)."""
    a_tied = np.linspace(0.0, 1.0, 100_001)
    if ties < 1.0:
        untied = (agreement - ties * a_tied) / (1.0 - ties)
        possible = bool(((untied >= 0.5 - 1e-9) & (untied <= 1.0) & (untied >= 0.0)).any())
    else:
        possible = True  # every triplet tied: nothing is left for the proxies to reverse
    iv = mean_ci([agreement])
    finding = rq3_order.OrderFinding("m", "d", iv, iv, mean_ci([ties]), iv)
    assert finding.ties_can_explain == possible
