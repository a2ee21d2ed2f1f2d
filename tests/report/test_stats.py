"""Statistics over seeds, checked against scipy and brute-force loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dml_bench.report.stats import (
    compare_seeds,
    first_reaching,
    mean_ci,
    mean_curve,
    ratio_of_means_ci,
)


def test_mean_ci_matches_scipy_t_interval() -> None:
    x = np.array([0.51, 0.55, 0.49, 0.58])
    iv = mean_ci(x)
    low, high = stats.t.interval(0.95, df=len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert iv.mean == pytest.approx(x.mean())
    assert (iv.low, iv.high) == pytest.approx((low, high))
    assert iv.n == 4 and iv.has_band


def test_mean_ci_with_one_value_has_no_band_and_ignores_nan() -> None:
    iv = mean_ci([0.4, math.nan])
    assert iv.mean == 0.4 and iv.n == 1 and not iv.has_band and math.isnan(iv.low)
    assert mean_ci([]).n == 0


def test_first_reaching_matches_a_loop() -> None:
    steps = np.array([0, 100, 200, 300, 400])
    values = np.array([0.1, 0.5, 0.85, 0.8, 0.9])
    target = 0.9 * values.max()
    expected = next(s for s, v in zip(steps, values, strict=True) if v >= target)
    assert first_reaching(steps, values, 0.9) == expected == 200
    assert first_reaching(steps, values, 1.0) == 400


def test_ratio_of_means_ci_brackets_the_ratio_and_is_reproducible() -> None:
    pair = [500.0, 600.0, 700.0]
    proxy = [200.0, 250.0, 300.0]
    r = ratio_of_means_ci(pair, proxy)
    assert r.value == pytest.approx(np.mean(pair) / np.mean(proxy))
    assert min(pair) / max(proxy) <= r.low <= r.value <= r.high <= max(pair) / min(proxy)
    assert r == ratio_of_means_ci(pair, proxy)
    one = ratio_of_means_ci([500.0], proxy)
    assert one.value == pytest.approx(500 / 250) and not one.has_band


def test_paired_test_when_seeds_match_equals_scipy_ttest_rel() -> None:
    a = {0: 0.61, 1: 0.64, 2: 0.60}
    b = {0: 0.52, 1: 0.57, 2: 0.50}
    res = compare_seeds(a, b)
    ref = stats.ttest_rel([0.61, 0.64, 0.60], [0.52, 0.57, 0.50])
    assert res.test == "paired t-test"
    assert res.p_value == pytest.approx(ref.pvalue) and res.statistic == pytest.approx(
        ref.statistic
    )
    assert res.difference == pytest.approx(
        np.mean([0.61, 0.64, 0.60]) - np.mean([0.52, 0.57, 0.50])
    )


def test_welch_test_when_seeds_differ_equals_scipy() -> None:
    a = {0: 0.61, 1: 0.64, 2: 0.60}
    b = {3: 0.52, 4: 0.57}
    res = compare_seeds(a, b)
    ref = stats.ttest_ind([0.61, 0.64, 0.60], [0.52, 0.57], equal_var=False)
    assert res.test == "Welch's t-test" and res.p_value == pytest.approx(ref.pvalue)


def test_no_test_with_one_seed() -> None:
    res = compare_seeds({0: 0.6}, {0: 0.5})
    assert not res.done and "2 seeds" in res.reason and math.isnan(res.p_value)


def test_mean_curve_averages_seeds_per_step() -> None:
    curves = pd.DataFrame(
        {
            "run_id": ["a", "a", "b", "b"],
            "step": [0, 10, 0, 10],
            "elapsed_s": [0.0, 4.0, 0.0, 6.0],
            "y": [0.1, 0.5, 0.3, 0.7],
        }
    )
    by_step = mean_curve(curves, y="y")
    assert list(by_step["x"]) == [0, 10]
    assert list(by_step["mean"]) == pytest.approx([0.2, 0.6])
    by_time = mean_curve(curves, y="y", x="elapsed_s")
    assert list(by_time["x"]) == pytest.approx([0.0, 5.0])
    low, high = stats.t.interval(0.95, 1, loc=0.6, scale=stats.sem([0.5, 0.7]))
    assert (by_step["low"].iloc[1], by_step["high"].iloc[1]) == pytest.approx((low, high))


def test_mean_ci_bounds_clip_an_interval_that_reaches_past_the_range() -> None:
    values = [0.0, 0.25, 0.75]  # a fraction: its t-interval reaches below 0 and above 1
    free = mean_ci(values)
    assert free.low < 0.0 and free.high > 1.0
    clipped = mean_ci(values, bounds=(0.0, 1.0))
    assert (clipped.mean, clipped.low, clipped.high) == (free.mean, 0.0, 1.0)
    inside = mean_ci([0.4, 0.5, 0.6], bounds=(0.0, 1.0))
    assert (inside.low, inside.high) == pytest.approx(
        (mean_ci([0.4, 0.5, 0.6]).low, mean_ci([0.4, 0.5, 0.6]).high)
    )


def test_mean_ci_flags_the_side_it_clipped() -> None:
    """A share piled against 100%: scipy's t-interval reaches above 1 and only that side is
    cut and flagged; the other bound is scipy's."""
    values = [0.996, 1.0, 0.999]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert high > 1.0 > low
    iv = mean_ci(values, bounds=(0.0, 1.0))
    assert (iv.clipped_low, iv.clipped_high, iv.clipped) == (False, True, True)
    assert (iv.low, iv.high) == (pytest.approx(low), 1.0)
    both = mean_ci([0.0, 0.25, 0.75], bounds=(0.0, 1.0))
    assert both.clipped_low and both.clipped_high
    assert not mean_ci([0.4, 0.5, 0.6], bounds=(0.0, 1.0)).clipped
    assert not mean_ci([0.0, 0.25, 0.75]).clipped  # no range given: nothing is cut


def test_ratio_interval_agrees_with_scipys_independent_bootstrap() -> None:
    """scipy.stats.bootstrap resamples each of several samples independently (paired=False),
    as the speed-up's interval does; the two percentile intervals agree up to Monte Carlo
    error (different random draws)."""
    pair = np.array([300.0, 500.0, 400.0, 900.0])
    proxy = np.array([200.0, 100.0, 150.0])
    ours = ratio_of_means_ci(pair, proxy)
    theirs = stats.bootstrap(
        (pair, proxy),
        lambda a, b, axis: np.mean(a, axis=axis) / np.mean(b, axis=axis),
        paired=False,
        vectorized=True,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    assert ours.low == pytest.approx(theirs.low, rel=0.05)
    assert ours.high == pytest.approx(theirs.high, rel=0.05)


def test_equal_values_give_a_zero_width_interval_despite_rounding() -> None:
    """[0.1] * 3 has a floating-point std of about 1e-17: the interval must still be exactly
    the mean (the report marks it "seeds equal"), not [0.100, 0.100]."""
    iv = mean_ci([0.1, 0.1, 0.1])
    assert iv.low == iv.high == iv.mean
    assert np.std([0.1, 0.1, 0.1], ddof=1) > 0  # what the old check (sem == 0) missed
