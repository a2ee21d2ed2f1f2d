"""RQ3: do proxies keep the order of distances? (docs/protocol.md, RQ3)

The share of sampled triplets (x, y, z) of the diagnostic batch for which d(x, y) < d(x, z) and
d(x, p(y)) < d(x, p(z)) agree (``order_agreement``, logged by proxy methods at every
evaluation). :func:`findings` takes it at the first and at the last logged row of each run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dml_bench.report import plots
from dml_bench.report.comparability import first_group, hint
from dml_bench.report.runs import FRACTION, Prepared, has
from dml_bench.report.section import Section, answer_lines
from dml_bench.report.stats import Interval, mean_ci
from dml_bench.report.text import (
    SUGGESTED_PROXY,
    ci_cell,
    fmt_pct,
    interval_text,
    markdown_table,
)

COLUMN = "order_agreement"


@dataclass(frozen=True)
class OrderFinding:
    """RQ3 for one method on one dataset: order agreement at the first and the last row."""

    label: str
    dataset: str
    start: Interval
    end: Interval

    def sentence(self) -> str:
        return (
            f"For {self.label} on {self.dataset}, proxies kept the order of distances in "
            f"{fmt_pct(self.end.mean)} of sampled triplets at the end of training "
            f"({interval_text(self.end, fmt_pct)}), against {fmt_pct(self.start.mean)} at the "
            f"first evaluation."
        )


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
            by_run = group.groupby("run_id")[COLUMN]
            found.append(
                OrderFinding(
                    str(label),
                    dataset,
                    mean_ci(by_run.first().to_numpy(), bounds=FRACTION),
                    mean_ci(by_run.last().to_numpy(), bounds=FRACTION),
                )
            )
    return found


INTRO = (
    "`order_agreement`: fraction of sampled triplets (x, y, z) of the diagnostic batch for "
    "which d(x, y) < d(x, z) and d(x, p(y)) < d(x, p(z)) agree; mean over seeds with 95% "
    "t-intervals."
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
        [f.label, f.dataset, str(f.end.n), ci_cell(f.start, fmt_pct), ci_cell(f.end, fmt_pct)]
        for f in found
    ]
    out.body.append(markdown_table(["method", "dataset", "seeds", "first row", "end"], rows))
    out.body.extend(answer_lines(found, lambda f: f.label, prep.headline_labels))
    return out
