"""How the report writes numbers and tables: one place for every format the report prints.

A generated sentence and the table beside it format a value with the same function, so the prose
and the tables cannot disagree (tests/report checks that each number of an answer stands in its
section's table). Nothing here computes a result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from dml_bench.report.stats import Interval, Ratio

#: The methods a "run this" hint suggests: the paper's method and its usual baseline. Suggestions
#: only; which runs take part in which answer comes from the roles the runs recorded.
SUGGESTED_PROXY = "proxy_nca"
SUGGESTED_PAIR = "triplet_semihard"
SUGGESTED_DATASET = "hershey"
#: A sweep that answers RQ5 (two proxy counts or more for each assignment).
SWEEP_METHODS = "proxy_nca,proxy_nca_dynamic"
SWEEP_SETTINGS = (
    "--set proxy_nca.proxies_per_class=1,2,4 "
    "--set proxy_nca_dynamic.proxies_per_class=0.5,1,2 --seeds 0,1,2"
)


# ---------------------------------------------------------------- numbers
def fmt_value(x: float) -> str:
    """A metric or loss value."""
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


def fmt_pct(x: float) -> str:
    """A fraction shown as a percentage."""
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


def fmt_steps(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.0f}"


def fmt_seconds(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.1f} s"


def fmt_ratio(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}x"


def fmt_p(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def fmt_confidence(x: float) -> str:
    return f"{100 * x:g}%"


def fmt_percent_points(x: float) -> str:
    """A value already in percent (the paper's tables), or ``""`` when there is none."""
    return "" if not math.isfinite(x) else f"{x:.2f}"


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """The main table's cell: ``mean ± std``, the mean alone for one seed, ``-`` for none."""
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


#: Every number formatter a sentence may use (tests check a sentence's numbers against them).
FORMATTERS: tuple[Callable[[float], str], ...] = (
    fmt_value,
    fmt_pct,
    fmt_steps,
    fmt_seconds,
    fmt_ratio,
    fmt_p,
    fmt_confidence,
)


# ---------------------------------------------------------------- shares in words
#: Up to this many, a share in words is the count itself ("on 1 of 2 logged rows"): a word such
#: as "most" says little when there are only a few.
SMALL_COUNT = 20


def share_words(count: int, total: int, noun: str) -> str:
    """``count`` of ``total`` items (``noun``, plural) in words that follow the value and the
    count: "on all 3 logged rows", "on none of the 3 ...", "on 1 of 2 ..." (a small total is
    said as it is), and for a large one "on most ..." only when more than half, "on half of
    the ..." for exactly half, "on fewer than half of the ...", each with the count."""
    if total <= 0:
        return f"on no {noun} (none logged)"
    if count == total:
        return f"on all {total} {noun}" if total > 1 else f"on 1 of 1 {noun}"
    if count == 0:
        return f"on none of the {total} {noun}"
    if total <= SMALL_COUNT:
        return f"on {count} of {total} {noun}"
    if 2 * count > total:
        word = f"most {noun}"
    elif 2 * count == total:
        word = f"half of the {noun}"
    else:
        word = f"fewer than half of the {noun}"
    return f"on {word} ({count} of {total})"


# ---------------------------------------------------------------- intervals in prose and cells
def interval_text(iv: Interval, fmt: Callable[[float], str]) -> str:
    """'95% CI a to b, 3 seeds', 'all 3 seeds equal' or 'one seed, so no interval'; a bound
    cut at the range of the value is marked (see :data:`CLIPPED_NOTE`)."""
    if iv.n < 2:
        return "one seed, so no interval"
    if agreed(iv):
        return f"all {iv.n} {AGREED_WORDS}, so no spread to build an interval from"
    low, high = bounds_text(iv, fmt)
    return f"{fmt_confidence(iv.confidence)} CI {low} to {high}, {iv.n} seeds"


def bounds_text(iv: Interval, fmt: Callable[[float], str]) -> tuple[str, str]:
    """The two bounds of an interval, each marked :data:`CLIPPED_MARK` where it was cut."""
    low = f"{fmt(iv.low)} {CLIPPED_MARK}" if iv.clipped_low else fmt(iv.low)
    high = f"{fmt(iv.high)} {CLIPPED_MARK}" if iv.clipped_high else fmt(iv.high)
    return low, high


def agreed(iv: Interval) -> bool:
    """Seeds that gave exactly the same value: a t-interval has zero width there, which shows
    no variation at the resolution measured, not certainty (see :data:`AGREED_NOTE`)."""
    return iv.n >= 2 and math.isfinite(iv.low) and iv.low == iv.high


#: The mark of a zero-width interval in a table cell, and the words of one in prose.
AGREED_CELL = "(seeds equal)"
AGREED_WORDS = "seeds equal"
#: Said once per section that has a zero-width interval.
AGREED_NOTE = (
    "*Seeds equal*: every seed gave exactly the same value, so a t-interval (or the bootstrap "
    "interval of a speed-up) has zero width. That "
    "is not certainty: the interval needs variation between seeds to say anything, and values "
    "measured on a grid (steps to a target are multiples of the evaluation interval) agree "
    "whenever the seeds fall between the same two evaluations."
)
#: The mark of an interval bound cut at the range of its value (:func:`stats.mean_ci`).
CLIPPED_MARK = "(clipped)"
#: Said once per section that prints a clipped bound.
CLIPPED_NOTE = (
    "*Clipped*: with few seeds a t-interval (mean ± t x standard error) can reach past the "
    "range a value can take: below 0% or above 100% for a share, below 0 for a count or a "
    "time. The bound is then cut at the range and marked (clipped). A t-interval that needs "
    "cutting assumed a symmetric, roughly normal spread that the seeds do not have (one seed "
    'far from the others, or values piled against the end of their range): read it as "the '
    'seeds disagree widely", not as a measured bound. Figure bands are cut the same way.'
)
#: Said once per section whose tables show a value of one seed (the cells carry no mark).
ONE_SEED_NOTE = (
    "*One seed*: values of a method with one seed (the `seeds` column) have no interval; "
    "an interval needs at least two seeds."
)


def ratio_text(r: Ratio) -> str:
    if not r.has_band:
        return "no interval: each method needs at least 2 seeds"
    if ratio_agreed(r):
        return (
            f"all {AGREED_WORDS} within each method ({r.n_denominator} vs {r.n_numerator} "
            "seeds), so no spread to build an interval from"
        )
    return (
        f"{fmt_confidence(r.confidence)} bootstrap CI {fmt_ratio(r.low)} to "
        f"{fmt_ratio(r.high)}, "
        f"{r.n_denominator} vs {r.n_numerator} seeds"
    )


def ci_cell(iv: Interval, fmt: Callable[[float], str] = fmt_value) -> str:
    """``mean [low, high]``; the mean alone for one seed (said once per section, see
    :data:`ONE_SEED_NOTE`); ``mean (seeds equal)`` for a zero-width interval; a bound cut at
    the range of the value carries :data:`CLIPPED_MARK`."""
    if iv.n == 0:
        return "-"
    if iv.n < 2:
        return fmt(iv.mean)
    if agreed(iv):
        return f"{fmt(iv.mean)} {AGREED_CELL}"
    low, high = bounds_text(iv, fmt)
    return f"{fmt(iv.mean)} [{low}, {high}]"


def ratio_agreed(r: Ratio) -> bool:
    """A bootstrap interval of zero width: every seed of each method gave the same value
    (steps on the evaluation grid), so every resample gives the same ratio (:func:`agreed`)."""
    return r.has_band and r.low == r.high


def ratio_cell(r: Ratio) -> str:
    if not r.has_band:
        return fmt_ratio(r.value)
    if ratio_agreed(r):
        return f"{fmt_ratio(r.value)} {AGREED_CELL}"
    return f"{fmt_ratio(r.value)} [{fmt_ratio(r.low)}, {fmt_ratio(r.high)}]"


# ---------------------------------------------------------------- markdown
def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align: Sequence[str] | None = None
) -> str:
    """A GitHub-flavoured Markdown table; ``|`` inside a cell is escaped.

    ``align``: one marker per column (``":---"`` left, ``"---:"`` right); without it every column
    gets a plain ``---``.
    """

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    rule = line(align) if align is not None else "|" + "|".join("---" for _ in header) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def run_command(methods: str, dataset: str, extra: str = "--seeds 0,1,2") -> str:
    """The ``dml-bench run`` command a section suggests when the runs cannot answer it
    (``dataset`` may be a comparable group's name, ``hershey (steps=100)``)."""
    return f"dml-bench run --methods {methods} --dataset {group_dataset(dataset)} {extra}"


def group_dataset(name: str) -> str:
    """The dataset of a comparable group's name (see :class:`dml_bench.report.runs.Group`):
    the part before `` (``; no dataset name has one."""
    return name.split(" (", 1)[0]


def file_name(name: str) -> str:
    """A figure's key as a file name: ``rq2_step_hershey (steps=100)`` ->
    ``rq2_step_hershey_steps-100``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("=", "-")).strip("_")


def both_families_command(dataset: str) -> str:
    return run_command(f"{SUGGESTED_PROXY},{SUGGESTED_PAIR}", dataset)
