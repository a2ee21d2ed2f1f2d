"""RQ3: do proxies keep the order of distances? (docs/protocol.md, RQ3)

The share of sampled triplets (x, y, z) of the diagnostic batch for which d(x, y) < d(x, z) and
d(x, p(y)) < d(x, p(z)) agree (``order_agreement``, logged by proxy methods at every
evaluation). :func:`findings` takes it at the first and at the last logged row of each run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pandas as pd

from dml_bench.report import plots
from dml_bench.report.comparability import first_group, hint
from dml_bench.report.runs import FRACTION, Prepared, has
from dml_bench.report.section import Section, answers
from dml_bench.report.stats import Interval, mean_ci
from dml_bench.report.text import (
    SUGGESTED_PROXY,
    ci_cell,
    fmt_pct,
    interval_text,
    markdown_table,
)

COLUMN = "order_agreement"
#: The share of triplets whose positive and negative share a proxy (logged beside agreement).
TIES = "order_ties"
CHANCE = 0.5


@dataclass(frozen=True)
class OrderFinding:
    """RQ3 for one method on one dataset: order agreement at the first and the last row, and
    the share of tied triplets (p(y) = p(z)) there when the runs logged it."""

    label: str
    dataset: str
    start: Interval
    end: Interval
    ties_start: Interval | None = None
    ties_end: Interval | None = None

    def sentence(self) -> str:
        text = (
            f"For {self.label} on {self.dataset}, proxies kept the order of distances in "
            f"{fmt_pct(self.end.mean)} of sampled triplets at the end of training "
            f"({interval_text(self.end, fmt_pct)}), against {fmt_pct(self.start.mean)} at the "
            f"first evaluation."
        )
        return text + self.below_chance()

    @property
    def starts_below_chance(self) -> bool:
        return self.start.mean < CHANCE

    @property
    def ties_can_explain(self) -> bool:
        """Whether the ties at the first row can account for agreement below chance.

        With a share t of tied triplets and agreement a, the untied triplets agree on
        (a - t a_tied) / (1 - t) of theirs, at most a / (1 - t) (no tie agreeing). Unless
        that reaches one half (2a + t >= 1), the proxies reversed the order of most untied
        triplets, and the ties do not explain the shortfall. The condition is linear in (a, t),
        so it holds for the means over seeds whenever it holds for every seed.
        """
        if self.ties_start is None:
            return False
        return 2 * self.start.mean + self.ties_start.mean >= 1.0

    def below_chance(self) -> str:
        """Why agreement is below chance at the first evaluation, when it is."""
        if not self.starts_below_chance:
            return ""
        if self.ties_start is None:
            return (
                " That is below chance; these runs did not log `order_ties`, so whether shared "
                "proxies explain it cannot be told (rerun with the current version)."
            )
        tied = fmt_pct(self.ties_start.mean)
        if not self.ties_can_explain:
            return (
                f" That is below chance, and ties do not account for it: only {tied} of the "
                "triplets had p(y) = p(z) there, so even if no tie agreed, the proxies reversed "
                "the order of most of the untied triplets."
            )
        return (
            f" That is below chance, and ties can account for it: {tied} of the triplets "
            "had p(y) = p(z) there; the proxies cannot order such a triplet, and a tie counts as "
            "agreeing only where the data does not rank y first (dynamic assignment, where the "
            f"untrained network puts different classes on one proxy); at the end "
            f"{fmt_pct(self.ties_end.mean if self.ties_end else float('nan'))} were tied."
        )


def stated(found: Sequence[OrderFinding], headline: Collection[str]) -> list[OrderFinding]:
    """The findings the prose states: the paper's method (``headline``; every finding when it
    did not run), then every other variant whose agreement starts below chance, so that each
    such start is explained where it is shown (the table's ties columns alone do not say
    whether ties account for it)."""
    first = [f for f in found if f.label in headline] or list(found)
    return first + [f for f in found if f not in first and f.starts_below_chance]


def order_curves(prep: Prepared, dataset: str) -> pd.DataFrame | None:
    """The rows of ``dataset`` that logged order agreement, or None when none did."""
    curves = prep.curves[prep.curves["group"] == dataset]
    if not has(curves, COLUMN):
        return None
    return curves[curves[COLUMN].notna()]


def findings(prep: Prepared) -> list[OrderFinding]:
    """Per dataset, per method (label order): agreement at the first and the last logged row,
    mean over seeds."""
    found = []
    for dataset in prep.datasets:
        diag = order_curves(prep, dataset)
        if diag is None:
            continue
        for label, group in diag.groupby("label", sort=False):
            logged_ties = TIES in group and not group[TIES].isna().any()
            ties = _first_and_last(group, TIES) if logged_ties else (None, None)
            found.append(OrderFinding(str(label), dataset, *_first_and_last(group, COLUMN), *ties))
    return found


def _first_and_last(group: pd.DataFrame, column: str) -> tuple[Interval, Interval]:
    """``column`` at each run's first and last logged row, mean over the runs (seeds)."""
    by_run = group.groupby("run_id")[column]
    first, last = by_run.first().to_numpy(), by_run.last().to_numpy()
    return mean_ci(first, bounds=FRACTION), mean_ci(last, bounds=FRACTION)


INTRO = (
    "`order_agreement`: fraction of sampled triplets (x, y, z) of the diagnostic batch for "
    "which d(x, y) < d(x, z) and d(x, p(y)) < d(x, p(z)) agree; mean over seeds with 95% "
    "t-intervals. `ties`: the share of those triplets with p(y) = p(z), which the proxies cannot "
    "order (a tie agrees only where the data does not rank y first); static assignment never "
    "ties, dynamic assignment ties when classes share a proxy."
)


def section(prep: Prepared, found: list[OrderFinding]) -> Section:
    """The RQ3 part of report.md: a figure per dataset, a table, the answers."""
    out = Section("rq3", "RQ3: do proxies keep the order of distances?", body=[INTRO])
    for dataset in prep.datasets:
        diag = order_curves(prep, dataset)
        if diag is not None:
            out.figures[f"rq3_order_{dataset}"] = plots.curve_figure(
                diag,
                y=COLUMN,
                x="step",
                xlabel="training step",
                ylabel="order agreement",
                title=f"RQ3: order agreement on {dataset}",
                bounds=FRACTION,
            )
    if not found:
        out.body.append(
            "**Cannot be answered from these runs:** no run logged `order_agreement` (proxy "
            f"methods do); run `{hint(prep, SUGGESTED_PROXY, first_group(prep))}`."
        )
        return out
    out.findings.extend(found)
    rows = [
        [
            f.label,
            f.dataset,
            str(f.end.n),
            ci_cell(f.start, fmt_pct),
            ci_cell(f.end, fmt_pct),
            "-" if f.ties_start is None else fmt_pct(f.ties_start.mean),
            "-" if f.ties_end is None else fmt_pct(f.ties_end.mean),
        ]
        for f in found
    ]
    out.body.append(
        markdown_table(
            ["method", "dataset", "seeds", "first row", "end", "ties: first row", "ties: end"],
            rows,
        )
    )
    out.body.extend(answers(stated(found, prep.headline_labels)))
    return out
