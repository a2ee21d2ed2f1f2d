"""RQ1: does the proxy loss bound the loss on the data points? (PAPER.md, RQ1; paper Sec. 4)

:func:`findings` measures, per method and dataset, on the diagnostic rows every proxy method logs
(proxy and data loss computed from the same embeddings of one batch): how often the proxy loss
was at least the data loss, how the gap moved from the first to the last quarter of training,
and eps, the distance of each embedding to its proxy. :func:`section` renders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dml_bench.report import plots
from dml_bench.report.runs import FRACTION, Prepared, has, nanmean, quarters
from dml_bench.report.section import Section, answer_lines
from dml_bench.report.stats import Interval, mean_ci
from dml_bench.report.text import (
    SUGGESTED_DATASET,
    SUGGESTED_PROXY,
    ci_cell,
    fmt_pct,
    fmt_value,
    interval_text,
    markdown_table,
    run_command,
)

#: The diagnostic losses, as metrics.csv names them (``proxy_<loss>_loss``, ``data_<loss>_loss``).
LOSSES = {"nca": "NCA", "triplet": "triplet"}


@dataclass(frozen=True)
class BoundFinding:
    """RQ1 for one method on one dataset (means over seeds of per-run quantities)."""

    label: str
    dataset: str
    loss: str  # "NCA" or "triplet"
    held: Interval  # fraction of logged rows with proxy loss >= data loss
    gap_first: float  # mean(proxy - data) in the first quarter of training
    gap_last: float
    eps_max_first: float
    eps_max_last: float
    eps_mean_first: float
    eps_mean_last: float

    def sentence(self) -> str:
        verdict = (
            "held on every logged row"
            if self.held.mean >= 1.0
            else ("held on most logged rows" if self.held.mean >= 0.5 else "mostly did not hold")
        )
        trend = gap_trend(self.gap_first, self.gap_last)
        return (
            f"For {self.label} on {self.dataset}, the proxy {self.loss} loss was at least the "
            f"data {self.loss} loss on {fmt_pct(self.held.mean)} of logged rows "
            f"({interval_text(self.held, fmt_pct)}), so the bound {verdict}; from the first to "
            f"the last quarter of training the gap went from {fmt_value(self.gap_first)} to "
            f"{fmt_value(self.gap_last)} ({trend}) and eps_max from "
            f"{fmt_value(self.eps_max_first)} to {fmt_value(self.eps_max_last)}."
        )


def gap_trend(first: float, last: float) -> str:
    """How the gap proxy - data moved: a gap that crosses zero did not narrow, it changed sign
    (the proxy loss went from above the data loss to below it, or back)."""
    if not (math.isfinite(first) and math.isfinite(last)):
        return "cannot tell"
    if first * last < 0:
        return "changed sign"
    return "narrowed" if abs(last) < abs(first) else "did not narrow"


def bound_finding(curves: pd.DataFrame, label: str, dataset: str, loss: str) -> BoundFinding:
    """One method's finding from its runs' curves; ``loss`` is a key of :data:`LOSSES`."""
    proxy_col, data_col = f"proxy_{loss}_loss", f"data_{loss}_loss"
    held, gap_first, gap_last = [], [], []
    eps: dict[str, list[float]] = {
        "max_first": [],
        "max_last": [],
        "mean_first": [],
        "mean_last": [],
    }
    for _, curve in curves.groupby("run_id"):
        rows = curve[curve[proxy_col].notna() & curve[data_col].notna()]
        if rows.empty:
            continue
        held.append(float((rows[proxy_col] >= rows[data_col]).mean()))
        first, last = quarters(rows)
        gap_first.append(float((first[proxy_col] - first[data_col]).mean()))
        gap_last.append(float((last[proxy_col] - last[data_col]).mean()))
        for kind in ("max", "mean"):
            col = f"eps_{kind}"
            logged = col in rows.columns
            eps[f"{kind}_first"].append(float(first[col].mean()) if logged else math.nan)
            eps[f"{kind}_last"].append(float(last[col].mean()) if logged else math.nan)
    return BoundFinding(
        label=label,
        dataset=dataset,
        loss=LOSSES[loss],
        held=mean_ci(held, bounds=FRACTION),
        gap_first=nanmean(gap_first),
        gap_last=nanmean(gap_last),
        eps_max_first=nanmean(eps["max_first"]),
        eps_max_last=nanmean(eps["max_last"]),
        eps_mean_first=nanmean(eps["mean_first"]),
        eps_mean_last=nanmean(eps["mean_last"]),
    )


def diagnostic_curves(prep: Prepared, dataset: str) -> pd.DataFrame | None:
    """The logged diagnostic rows on ``dataset``, or None when no run logged the NCA pair."""
    curves = prep.curves[prep.curves["dataset"] == dataset]
    if not has(curves, "proxy_nca_loss", "data_nca_loss"):
        return None
    return curves[curves["proxy_nca_loss"].notna()]


def findings(prep: Prepared) -> list[BoundFinding]:
    """Per dataset, per method (label order), per loss logged: one :class:`BoundFinding`."""
    found = []
    for dataset in prep.datasets:
        diag = diagnostic_curves(prep, dataset)
        if diag is None:
            continue
        for label, group in diag.groupby("label", sort=False):
            for loss in LOSSES:
                if has(group, f"proxy_{loss}_loss", f"data_{loss}_loss"):
                    found.append(bound_finding(group, str(label), dataset, loss))
    return found


INTRO = (
    "On a fixed diagnostic batch logged at every evaluation, the proxy loss and the loss on "
    "the in-batch data points are computed from the same embeddings (PAPER.md, RQ1). "
    "`held` is the fraction of logged rows where proxy loss >= data loss (mean over seeds, "
    "95% t-interval); gap = proxy - data, averaged over the first and the last quarter of "
    "the training steps; eps = distance of each embedding to its proxy. `held` tests the "
    "plain inequality: the paper's bound (Sec. 4) carries a slack term that grows with eps "
    "(and, for NCA, a scaling by the norms of embeddings and proxies), so a row where the "
    "proxy loss is below the data loss while eps is large does not contradict it; read "
    "`held` together with the eps columns."
)
HEADER = [
    "method",
    "dataset",
    "loss",
    "seeds",
    "held",
    "gap Q1",
    "gap Q4",
    "eps_mean Q1",
    "eps_mean Q4",
    "eps_max Q1",
    "eps_max Q4",
]


def table_row(f: BoundFinding) -> list[str]:
    return [
        f.label,
        f.dataset,
        f.loss,
        str(f.held.n),
        ci_cell(f.held, fmt_pct),
        fmt_value(f.gap_first),
        fmt_value(f.gap_last),
        fmt_value(f.eps_mean_first),
        fmt_value(f.eps_mean_last),
        fmt_value(f.eps_max_first),
        fmt_value(f.eps_max_last),
    ]


def section(prep: Prepared, found: list[BoundFinding]) -> Section:
    """The RQ1 part of report.md: a table, a figure per dataset, the answer sentences."""
    out = Section("rq1", "RQ1: does the proxy loss bound the data loss?", body=[INTRO])
    for dataset in prep.datasets:
        diag = diagnostic_curves(prep, dataset)
        if diag is not None:
            out.figures[f"rq1_bound_{dataset}"] = plots.bound_figure(
                diag, title=f"RQ1 bound on {dataset}: proxy (solid) vs data (dashed) loss"
            )
    if not found:
        dataset = prep.datasets[0] if prep.datasets else SUGGESTED_DATASET
        out.body.append(
            "**Cannot be answered from these runs:** no run logged `proxy_nca_loss` and "
            "`data_nca_loss`. Proxy methods log them; run e.g. "
            f"`{run_command(SUGGESTED_PROXY, dataset)}`."
        )
        return out
    out.findings.extend(found)
    out.body.append(markdown_table(HEADER, [table_row(f) for f in found]))
    out.body.extend(answer_lines(found, lambda f: f.label, prep.headline_labels))
    return out
