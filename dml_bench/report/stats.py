"""Statistics over seeds: confidence intervals, steps-to-target, speed-ups and significance tests.

Every number the report prints comes from here, so the choices are stated once:

- A mean over seeds gets a two-sided Student-t interval (seeds are few, and the t-interval is the
  honest choice for a mean of a handful of roughly normal values). One seed gives no interval.
- Steps (or seconds) to reach a fraction of a run's best Recall@1 is the first *evaluated* step
  whose value reaches it: the curve is only known at eval steps, so this is an upper bound on the
  true crossing, with the resolution of ``--eval-every``.
- A speed-up (paper Fig. 1: "about 3x faster") is a ratio of two means over seeds; its interval is
  a percentile bootstrap that resamples the seeds of each method independently, with a fixed
  generator seed so the report is reproducible.
- Proxy-NCA against a baseline: a paired t-test when both methods ran on exactly the same seeds
  (runs with the same seed share the data split and the evaluation queries, so their difference
  removes that shared variation), otherwise Welch's t-test (no equal-variance assumption).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

#: The generator seed of every bootstrap in a report (reports must be reproducible).
BOOTSTRAP_SEED = 0
BOOTSTRAP_SAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with a two-sided confidence interval (NaN bounds if ``n < 2``).

    ``clipped_low`` / ``clipped_high``: the t-interval reached past the range the quantity can
    take and was cut there (see :func:`mean_ci`); the report marks such a bound.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95
    clipped_low: bool = False
    clipped_high: bool = False

    @property
    def clipped(self) -> bool:
        return self.clipped_low or self.clipped_high

    @property
    def has_band(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.has_band else math.nan


def mean_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> Interval:
    """Mean and Student-t confidence interval of ``values`` (NaNs dropped).

    ``bounds``: the range the quantity can take (a fraction lies in [0, 1], a step count is
    >= 0). With few seeds a t-interval can reach past it (a fraction's interval below 0%); it is
    then clipped to the range, since values outside it cannot occur, and the clipped side is
    flagged (``clipped_low``, ``clipped_high``): a t-interval that needs clipping assumed a
    symmetric spread the values do not have (few, skewed seeds), so the report says so rather
    than print the cut bound as if it were measured.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, confidence)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, confidence)
    if float(np.ptp(x)) == 0.0:  # equal values: x.std() of [0.1] * 3 is 1.7e-17, not 0
        return Interval(mean, mean, mean, n, confidence)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem
    low, high = mean - half, mean + half
    if bounds is None:
        return Interval(mean, low, high, n, confidence)
    cut_low, cut_high = low < bounds[0], high > bounds[1]
    return Interval(
        mean,
        bounds[0] if cut_low else low,
        bounds[1] if cut_high else high,
        n,
        confidence,
        clipped_low=cut_low,
        clipped_high=cut_high,
    )


def first_reaching(x: np.ndarray, values: np.ndarray, fraction: float) -> float:
    """The first ``x`` at which ``values`` reaches ``fraction`` of its own maximum (NaN if none).

    ``x`` is the step (or elapsed seconds) of each evaluation, in order. RQ2 of the paper: how
    fast each method reaches a fixed fraction of the best Recall@1 it ever reaches.
    """
    x = np.asarray(x, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & np.isfinite(x)
    if not ok.any():
        return math.nan
    x, v = x[ok], v[ok]
    target = fraction * float(v.max())
    hits = np.flatnonzero(v >= target)
    return float(x[hits[0]])


def reaching_bounds(x: np.ndarray, values: np.ndarray, fraction: float) -> tuple[float, float]:
    """(the last evaluated ``x`` before the target, the first ``x`` at it): the true time to
    ``fraction`` of the best lies between the two, since nothing is measured in between. The
    lower bound is the ``x`` of the target itself when the target is met at the first row."""
    x = np.asarray(x, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & np.isfinite(x)
    if not ok.any():
        return math.nan, math.nan
    x, v = x[ok], v[ok]
    hit = int(np.flatnonzero(v >= fraction * float(v.max()))[0])
    return float(x[max(hit - 1, 0)]), float(x[hit])


@dataclass(frozen=True)
class Ratio:
    """``numerator_mean / denominator_mean`` with a bootstrap percentile interval."""

    value: float
    low: float
    high: float
    n_numerator: int
    n_denominator: int
    confidence: float = 0.95

    @property
    def has_band(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def ratio_of_means_ci(
    numerator: Sequence[float] | np.ndarray,
    denominator: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Ratio:
    """mean(numerator) / mean(denominator), with a percentile bootstrap over each side's values.

    Used for speed-ups: numerator = a pair method's steps-to-target over its seeds, denominator =
    the proxy method's. The two sides are resampled independently (different methods' runs are
    not paired in time-to-target). No interval unless each side has at least two values; a
    resample whose denominator mean is 0 is dropped (an infinite ratio has no percentile).
    """
    a = np.asarray(numerator, dtype=float)
    b = np.asarray(denominator, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0 or float(b.mean()) == 0.0:
        return Ratio(math.nan, math.nan, math.nan, int(a.size), int(b.size), confidence)
    value = float(a.mean() / b.mean())
    if a.size < 2 or b.size < 2:
        return Ratio(value, math.nan, math.nan, int(a.size), int(b.size), confidence)
    rng = np.random.default_rng(seed)
    boot_a = rng.choice(a, size=(n_boot, a.size), replace=True).mean(axis=1)
    boot_b = rng.choice(b, size=(n_boot, b.size), replace=True).mean(axis=1)
    keep = boot_b != 0.0
    ratios = boot_a[keep] / boot_b[keep]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return Ratio(value, float(low), float(high), int(a.size), int(b.size), confidence)


@dataclass(frozen=True)
class TestResult:
    """A two-sample test of ``reference`` against ``other`` on one metric."""

    test: str  # "paired t-test", "Welch's t-test", or "none"
    statistic: float
    p_value: float
    difference: float  # mean(reference) - mean(other)
    n_reference: int
    n_other: int
    reason: str = ""  # why no test was possible

    @property
    def done(self) -> bool:
        return self.test != "none"


def compare_seeds(reference: dict[int, float], other: dict[int, float]) -> TestResult:
    """Test whether two methods' values over seeds differ (seed -> value for each method).

    Paired t-test when both ran on the same set of (at least two) seeds; otherwise Welch's t-test
    when each side has at least two seeds; otherwise no test, with the reason.
    """
    ref = {s: v for s, v in reference.items() if math.isfinite(v)}
    oth = {s: v for s, v in other.items() if math.isfinite(v)}
    n_ref, n_oth = len(ref), len(oth)
    diff = (
        float(np.mean(list(ref.values())) - np.mean(list(oth.values())))
        if ref and oth
        else math.nan
    )
    if set(ref) == set(oth) and n_ref >= 2:
        seeds = sorted(ref)
        a = np.array([ref[s] for s in seeds])
        b = np.array([oth[s] for s in seeds])
        if np.allclose(a - b, (a - b)[0]):
            return TestResult(
                "none",
                math.nan,
                math.nan,
                diff,
                n_ref,
                n_oth,
                "the per-seed differences are all equal (zero variance)",
            )
        res = scipy_stats.ttest_rel(a, b)
        return TestResult(
            "paired t-test", float(res.statistic), float(res.pvalue), diff, n_ref, n_oth
        )
    if n_ref >= 2 and n_oth >= 2:
        a = np.array(list(ref.values()))
        b = np.array(list(oth.values()))
        if a.std() == 0 and b.std() == 0:
            return TestResult(
                "none",
                math.nan,
                math.nan,
                diff,
                n_ref,
                n_oth,
                "both methods have zero variance over seeds",
            )
        res = scipy_stats.ttest_ind(a, b, equal_var=False)
        return TestResult(
            "Welch's t-test", float(res.statistic), float(res.pvalue), diff, n_ref, n_oth
        )
    return TestResult(
        "none",
        math.nan,
        math.nan,
        diff,
        n_ref,
        n_oth,
        "a test needs at least 2 seeds of each method",
    )


def mean_curve(
    curves: pd.DataFrame,
    y: str,
    x: str = "step",
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Mean over runs of ``y`` at each evaluated step, with a t-interval band.

    ``curves`` holds several runs (one per seed) of one method. Runs are aligned by ``step``
    (every run of a method evaluates at the same steps). For ``x="elapsed_s"`` the x position of
    a step is the mean wall-clock time at which the runs reached it. Columns: ``x``, ``mean``,
    ``low``, ``high``, ``n``. ``bounds``: the range of ``y``, to which the band is clipped.
    """
    rows = []
    for step, group in curves.groupby("step", sort=True):
        interval = mean_ci(group[y].to_numpy(dtype=float), bounds=bounds)
        position = float(step) if x == "step" else float(group[x].astype(float).mean())
        rows.append((position, interval.mean, interval.low, interval.high, interval.n))
    frame = pd.DataFrame(rows, columns=["x", "mean", "low", "high", "n"])
    return frame[frame["n"] > 0].reset_index(drop=True)
