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
