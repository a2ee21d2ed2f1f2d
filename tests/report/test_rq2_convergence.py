"""RQ2: time to target and speed-ups against a brute-force scan of the fixture's curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dml_bench.report import rq2_convergence
from dml_bench.report.runs import Prepared, prepare
from dml_bench.store.read import load_runs

from .conftest import assert_numbers_come_from_fields, recall_curve


def _steps_to_target(curve: list[float], fraction: float) -> int:
    for i, v in enumerate(curve):
        if v >= fraction * max(curve):
            return 100 * i
    raise AssertionError


def test_speedup_against_brute_force(prep: Prepared) -> None:
    (hershey,) = rq2_convergence.findings(prep, target_fraction=0.9)
    assert hershey.comparable
    speed = next(
        f for f in hershey.speedups if f.proxy == "proxy_nca" and f.pair == "triplet_semihard"
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
    by_label = {f.label: f for f in hershey.methods}
    assert by_label["proxy_nca"].steps_per_seed == dict(enumerate(map(float, proxy)))
    assert by_label["triplet_semihard"].best.mean == pytest.approx(np.mean([0.50, 0.53, 0.52]))
    # every proxy variant against the one pair method
    assert len(hershey.speedups) == sum(f.family == "proxy" for f in hershey.methods)


def test_section_figures_and_answers(prep: Prepared) -> None:
    found = rq2_convergence.findings(prep, 0.9)
    section = rq2_convergence.section(prep, found, 0.9)
    assert {"rq2_recall_vs_step_hershey", "rq2_recall_vs_time_hershey"} <= set(section.figures)
    fig = section.figures["rq2_recall_vs_step_hershey"]
    assert len(fig.axes[0].get_lines()) == 5  # five method variants
    answers = [b for b in section.body if b.startswith("**Answer.**")]
    assert len(answers) == 1 and "proxy_nca reached 90.0%" in answers[0]


def test_one_family_only_gives_each_method_its_time(make_run, results) -> None:
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    (ds,) = rq2_convergence.findings(prep, 0.9)
    assert not ds.comparable and ds.speedups == []
    section = rq2_convergence.section(prep, [ds], 0.9)
    assert "proxy_nca,triplet_semihard" in "\n".join(section.body)
    (single,) = section.findings
    assert "one seed, so no interval" in single.sentence()
    assert_numbers_come_from_fields(single)
    assert math.isnan(single.steps.low)
