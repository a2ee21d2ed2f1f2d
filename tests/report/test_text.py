"""Number formats and the Markdown table renderer shared by the tables and the sections."""

from __future__ import annotations

import math

import pytest

from dml_bench.report import text
from dml_bench.report.stats import Interval, Ratio


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        (text.fmt_value, 0.61234, "0.612"),
        (text.fmt_pct, 0.8889, "88.9%"),
        (text.fmt_steps, 349.6, "350"),
        (text.fmt_seconds, 12.34, "12.3 s"),
        (text.fmt_ratio, 2.345, "2.35x"),
        (text.fmt_p, 0.0001234, "0.000123"),
        (text.fmt_confidence, 0.95, "95%"),
        (text.fmt_percent_points, 49.214, "49.21"),
    ],
)
def test_formats(fmt, value: float, expected: str) -> None:
    assert fmt(value) == expected


@pytest.mark.parametrize("fmt", text.FORMATTERS[:-1])  # fmt_confidence is never NaN
def test_nan_is_not_a_number(fmt) -> None:
    assert fmt(math.nan) == "n/a"


def test_mean_std_cell() -> None:
    assert text.format_mean_std(0.5, 0.01) == "0.500 ± 0.010"
    assert text.format_mean_std(0.5, math.nan) == "0.500"
    assert text.format_mean_std(math.nan, 0.1) == "-"


def test_interval_cells_and_prose() -> None:
    three = Interval(mean=0.5, low=0.4, high=0.6, n=3, confidence=0.95)
    one = Interval(mean=0.5, low=math.nan, high=math.nan, n=1, confidence=0.95)
    none = Interval(mean=math.nan, low=math.nan, high=math.nan, n=0, confidence=0.95)
    assert text.ci_cell(three) == "0.500 [0.400, 0.600]"
    assert text.ci_cell(one, text.fmt_pct) == "50.0%"  # one seed: said once per section
    assert text.ci_cell(none) == "-"
    assert text.interval_text(three, text.fmt_value) == "95% CI 0.400 to 0.600, 3 seeds"
    assert text.interval_text(one, text.fmt_value) == "one seed, so no interval"


def test_seeds_that_agree_exactly_are_not_shown_as_certainty() -> None:
    """a1469a8 printed "250 [250, 250]", which reads as certainty."""
    equal = Interval(mean=250.0, low=250.0, high=250.0, n=3, confidence=0.95)
    assert text.ci_cell(equal, text.fmt_steps) == "250 (seeds equal)"
    assert text.interval_text(equal, text.fmt_steps) == (
        "all 3 seeds equal, so no spread to build an interval from"
    )
    assert "not certainty" in text.AGREED_NOTE


def test_ratio_cell_and_prose() -> None:
    band = Ratio(value=2.0, low=1.5, high=2.5, n_numerator=3, n_denominator=2, confidence=0.95)
    assert text.ratio_cell(band) == "2.00x [1.50x, 2.50x]"
    assert text.ratio_text(band) == "95% bootstrap CI 1.50x to 2.50x, 2 vs 3 seeds"
    flat = dict(vars(band), low=math.nan, high=math.nan, n_numerator=1)
    assert text.ratio_cell(Ratio(**flat)) == "2.00x"


def test_markdown_table_plain_and_aligned() -> None:
    plain = text.markdown_table(["a", "b"], [["x|y", 1]])
    assert plain.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]
    aligned = text.markdown_table(["a", "b"], [["x", "1"]], align=[":---", "---:"])
    assert aligned.splitlines()[1] == "| :--- | ---: |"


def test_run_command() -> None:
    assert text.both_families_command("cub200") == (
        "dml-bench run --methods proxy_nca,triplet_semihard --dataset cub200 --seeds 0,1,2"
    )


@pytest.mark.parametrize(
    ("count", "total", "expected"),
    [
        (1, 2, "on 1 of 2 rows"),
        (2, 2, "on all 2 rows"),
        (1, 1, "on 1 of 1 rows"),
        (0, 2, "on none of the 2 rows"),
        (0, 0, "on no rows (none logged)"),
        (15, 20, "on 15 of 20 rows"),
        (26, 27, "on most rows (26 of 27)"),
        (50, 100, "on half of the rows (50 of 100)"),
        (49, 100, "on fewer than half of the rows (49 of 100)"),
        (100, 100, "on all 100 rows"),
    ],
)
def test_share_words_follow_the_value_and_the_count(count: int, total: int, expected: str) -> None:
    """ "most" only above one half, and a small count said as it is (a1469a8 said "most" for
    1 of 2)."""
    assert text.share_words(count, total, "rows") == expected


def test_a_clipped_bound_is_marked_in_cells_and_prose() -> None:
    """The example report printed "22.2 s [0.0 s, 96.3 s]": a time cannot be 0, the t-interval
    had reached below it and was cut without a word."""
    cut = Interval(mean=0.272, low=0.0, high=0.735, n=3, clipped_low=True)
    assert text.ci_cell(cut, text.fmt_pct) == "27.2% [0.0% (clipped), 73.5%]"
    assert text.interval_text(cut, text.fmt_pct) == "95% CI 0.0% (clipped) to 73.5%, 3 seeds"
    top = Interval(mean=0.998, low=0.993, high=1.0, n=3, clipped_high=True)
    assert text.ci_cell(top, text.fmt_pct) == "99.8% [99.3%, 100.0% (clipped)]"
    assert "(clipped)" in text.CLIPPED_NOTE and text.CLIPPED_MARK == "(clipped)"


def test_a_zero_width_speedup_interval_is_marked_like_equal_seeds() -> None:
    """The example report printed "0.50x [0.50x, 0.50x]" (every seed of both methods on the
    same evaluation), which reads as certainty, as "250 [250, 250]" did."""
    flat = Ratio(value=0.5, low=0.5, high=0.5, n_numerator=3, n_denominator=3, confidence=0.95)
    assert text.ratio_cell(flat) == f"0.50x {text.AGREED_CELL}"
    assert "no spread" in text.ratio_text(flat) and "[" not in text.ratio_text(flat)
