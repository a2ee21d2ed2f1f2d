"""RQ3: order agreement at the first and last row, against scipy's t-interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dml_bench.report import rq3_order
from dml_bench.report.runs import Prepared, prepare
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
    assert "below chance because 60.5% of the triplets had p(y) = p(z)" in text
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
