"""RQ1: does the proxy loss bound the loss on the data points? (docs/protocol.md, RQ1; paper Sec. 4)

:func:`findings` measures, per method and dataset, on the diagnostic rows every proxy method logs
(proxy and data loss computed from the same embeddings of one batch): how often the proxy loss
was at least the data loss, how the gap moved from the first to the last quarter of training,
and eps, the distance of each embedding to its proxy. :func:`section` renders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from dml_bench.eval.bound import NCA_EPS_FACTOR, TRIPLET_EPS_FACTOR
from dml_bench.report import plots
from dml_bench.report.comparability import first_group, hint
from dml_bench.report.runs import FRACTION, Prepared, has, nanmean, quarters
from dml_bench.report.section import Section, answer_lines
from dml_bench.report.stats import Interval, mean_ci
from dml_bench.report.text import (
    SUGGESTED_PROXY,
    ci_cell,
    fmt_pct,
    fmt_value,
    interval_text,
    markdown_table,
    share_words,
)

#: The diagnostic losses, as metrics.csv names them (``proxy_<loss>_loss``, ``data_<loss>_loss``).
LOSSES = {"nca": "NCA", "triplet": "triplet"}


@dataclass(frozen=True)
class BoundFinding:
    """RQ1 for one method on one dataset and loss form (means over seeds of per-run values).

    ``held_paper``: share of (x, y, Z) (NCA) or (x, y, z) (triplet) where the data loss is at most
    the paper's right-hand side (:mod:`dml_bench.eval.bound`), averaged over logged rows;
    ``held_paper_rows``: share of logged rows where it held on the mean over the batch;
    ``held_paper_no_eps``: the share of triples without the ``c eps`` term. ``held_plain``: share
    of logged rows where the proxy loss was at least the data loss at the same scale (the plain
    check); ``held_plain_triples``: the same check per triple. The paper's columns are None for
    runs recorded before they were logged. ``gap``: right-hand side minus data loss (the paper's
    form when logged, else proxy minus data), first and last quarter of training. ``rows``:
    logged rows over all runs, ``rows_held_plain`` those where the plain check held;
    ``rows_paper`` the rows that logged the paper's bound on the batch mean,
    ``rows_held_paper`` those where it held (the counts behind the words of the sentence).
    """

    label: str
    dataset: str
    loss: str  # "NCA" or "triplet"
    held_plain: Interval
    gap_first: float
    gap_last: float
    eps_max_first: float
    eps_max_last: float
    eps_mean_first: float
    eps_mean_last: float
    held_paper: Interval | None = None
    held_paper_rows: Interval | None = None
    held_paper_no_eps: Interval | None = None
    held_plain_triples: Interval | None = None
    terms_last: dict[str, float] = field(default_factory=dict)
    eps_factor: float = NCA_EPS_FACTOR
    rows: int = 0
    rows_held_plain: int = 0
    rows_paper: int = 0
    rows_held_paper: int = 0

    def sentence(self) -> str:
        trend = gap_trend(self.gap_first, self.gap_last)
        movement = (
            f"from the first to the last quarter of training the gap between the two sides went "
            f"from {fmt_value(self.gap_first)} to {fmt_value(self.gap_last)} ({trend}) and "
            f"eps_max from {fmt_value(self.eps_max_first)} to {fmt_value(self.eps_max_last)}."
        )
        plain = (
            f"the plain check (proxy {self.loss} loss at least the data {self.loss} loss at the "
            f"same scale) held {share_words(self.rows_held_plain, self.rows, 'logged rows')} "
            f"({fmt_pct(self.held_plain.mean)}; {interval_text(self.held_plain, fmt_pct)})"
        )
        if self.held_paper is None or self.held_paper_rows is None:
            return (
                f"For {self.label} on {self.dataset}, these runs did not log the paper's bound; "
                f"{plain}; {movement}"
            )
        no_eps = self.held_paper_no_eps
        no_eps_text = (
            f", without the eps term for {fmt_pct(no_eps.mean)}" if no_eps is not None else ""
        )
        return (
            f"For {self.label} on {self.dataset}, the paper's bound on the {self.loss} loss "
            f"(data loss <= {self.form()} + c eps) held for "
            f"{fmt_pct(self.held_paper.mean)} of the in-batch triples "
            f"({interval_text(self.held_paper, fmt_pct)}){no_eps_text}, and on the batch mean "
            f"{share_words(self.rows_held_paper, self.rows_paper, 'logged rows')} "
            f"({fmt_pct(self.held_paper_rows.mean)}); {plain}; {movement}"
        )

    def form(self) -> str:
        """The right-hand side in words, without the eps term."""
        if self.loss == LOSSES["nca"]:
            return "alpha x proxy loss + (1 - alpha) log n"
        return "proxy loss"


def gap_trend(first: float, last: float) -> str:
    """How the gap moved: a gap that crosses zero did not narrow, it changed sign."""
    if not (math.isfinite(first) and math.isfinite(last)):
        return "cannot tell"
    if first * last < 0:
        return "changed sign"
    return "narrowed" if abs(last) < abs(first) else "did not narrow"


#: The slack terms the table shows (last quarter of training), per loss form.
TERMS = {
    "nca": {
        "data": "bound_nca_data",
        "alpha x proxy": "bound_nca_proxy",
        "(1 - alpha) log n": "bound_nca_log_term",
        "c eps": "bound_nca_eps_term",
    },
    "triplet": {
        "data": "bound_triplet_data",
        "alpha x proxy": "bound_triplet_proxy",
        "(1 - alpha) log n": "",
        "c eps": "bound_triplet_eps_term",
    },
}


def _run_values(rows: pd.DataFrame, loss: str) -> dict[str, float]:
    """One run's per-row means of the paper's columns, and its terms in the last quarter."""
    prefix = f"bound_{loss}"
    values: dict[str, float] = {}
    for name in ("held_paper", "held_paper_no_eps", "held_plain", "held_paper_on_mean"):
        column = f"{prefix}_{name}"
        values[name] = float(rows[column].mean()) if has(rows, column) else math.nan
    _, last = quarters(rows)
    for term, column in TERMS[loss].items():
        values[term] = float(last[column].mean()) if column and has(last, column) else math.nan
    if loss == "nca" and has(last, "bound_alpha"):
        values["alpha x proxy"] *= float(last["bound_alpha"].mean())
    return values


def _gap(rows: pd.DataFrame, loss: str) -> pd.Series:
    """Right-hand side minus data loss per row: the paper's form when logged, else plain."""
    rhs, data = f"bound_{loss}_rhs", f"bound_{loss}_data"
    if has(rows, rhs, data):
        return rows[rhs] - rows[data]
    return rows[f"proxy_{loss}_loss"] - rows[f"data_{loss}_loss"]


def bound_finding(curves: pd.DataFrame, label: str, dataset: str, loss: str) -> BoundFinding:
    """One method's finding from its runs' curves; ``loss`` is a key of :data:`LOSSES`."""
    proxy_col, data_col = f"proxy_{loss}_loss", f"data_{loss}_loss"
    held, gap_first, gap_last = [], [], []
    counts = {"rows": 0, "rows_held_plain": 0, "rows_paper": 0, "rows_held_paper": 0}
    paper: dict[str, list[float]] = {}
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
        _count_rows(counts, rows, loss)
        first, last = quarters(rows)
        gap_first.append(float(_gap(first, loss).mean()))
        gap_last.append(float(_gap(last, loss).mean()))
        for name, value in _run_values(rows, loss).items():
            paper.setdefault(name, []).append(value)
        for kind in ("max", "mean"):
            col = f"eps_{kind}"
            logged = col in rows.columns
            eps[f"{kind}_first"].append(float(first[col].mean()) if logged else math.nan)
            eps[f"{kind}_last"].append(float(last[col].mean()) if logged else math.nan)
    return BoundFinding(
        label=label,
        dataset=dataset,
        loss=LOSSES[loss],
        held_plain=mean_ci(held, bounds=FRACTION),
        gap_first=nanmean(gap_first),
        gap_last=nanmean(gap_last),
        eps_max_first=nanmean(eps["max_first"]),
        eps_max_last=nanmean(eps["max_last"]),
        eps_mean_first=nanmean(eps["mean_first"]),
        eps_mean_last=nanmean(eps["mean_last"]),
        held_paper=_fraction(paper.get("held_paper", [])),
        held_paper_rows=_fraction(paper.get("held_paper_on_mean", [])),
        held_paper_no_eps=_fraction(paper.get("held_paper_no_eps", [])),
        held_plain_triples=_fraction(paper.get("held_plain", [])),
        terms_last={term: nanmean(paper.get(term, [])) for term in TERMS[loss]},
        eps_factor=NCA_EPS_FACTOR if loss == "nca" else TRIPLET_EPS_FACTOR,
        **counts,
    )


def _count_rows(counts: dict[str, int], rows: pd.DataFrame, loss: str) -> None:
    """Add one run's logged rows, and those where each check held, to ``counts``."""
    counts["rows"] += len(rows)
    counts["rows_held_plain"] += int(
        (rows[f"proxy_{loss}_loss"] >= rows[f"data_{loss}_loss"]).sum()
    )
    column = f"bound_{loss}_held_paper_on_mean"
    if column in rows.columns:
        on_mean = rows[column].dropna()
        counts["rows_paper"] += len(on_mean)
        counts["rows_held_paper"] += int((on_mean >= 1.0).sum())


def _fraction(values: list[float]) -> Interval | None:
    """Mean and interval over the runs that logged a value; None when none did."""
    finite = [v for v in values if math.isfinite(v)]
    return mean_ci(finite, bounds=FRACTION) if finite else None


def diagnostic_curves(prep: Prepared, dataset: str) -> pd.DataFrame | None:
    """The logged diagnostic rows on ``dataset``, or None when no run logged the NCA pair."""
    curves = prep.curves[prep.curves["group"] == dataset]
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
    "On a fixed diagnostic batch logged at every evaluation, the loss on the in-batch data "
    "points and the loss on their proxies are computed from the same embeddings (docs/protocol.md, "
    "RQ1). The paper's bound (Sec. 4; `dml_bench/eval/bound.py`) reads, for NCA, data loss at "
    "unit scale <= alpha x proxy loss at the method's scale s + (1 - alpha) log n + c eps, with "
    "alpha = 1/s (embeddings and proxies act as vectors of norm sqrt(s)), n the number of terms "
    "in the denominator, eps the largest distance of a batch embedding to its proxy and "
    f"c = {NCA_EPS_FACTOR:g} (triplet form: c = {TRIPLET_EPS_FACTOR:g}, no alpha and no log "
    "term). `held (paper's bound)` is the share of in-batch "
    "triples where it held (mean over logged rows, then over seeds with a 95% t-interval) and "
    "the share of rows where it held on the batch mean; `held (plain)` is the comparison "
    "without alpha, log n or eps: proxy loss >= data loss at the same scale, per row (on the "
    "batch mean) and per triple. The slack terms are means over the last quarter of training; "
    "gap = right-hand side - data loss, first and last quarter (proxy - data for runs that did "
    "not log the paper's bound)."
)
#: Beside the RQ1 figure: why its NCA losses can be below zero (docs/protocol.md, "Negative
#: losses").
NEGATIVE_LOSSES = (
    "*Negative losses*: the NCA losses follow the paper's denominator, which holds the "
    "negatives only: L = -log(exp(-s d(x, p(y))) / sum over z != y of exp(-s d(x, p(z)))). "
    "The ratio inside the log exceeds 1 as soon as the positive is nearer than the soft "
    "minimum over the negatives, so the loss goes below zero once training works: expected, "
    'not a bug (docs/protocol.md, "Negative losses"). With `denominator="all"` (a softmax, as '
    "in pytorch-metric-learning) the positive joins the denominator and the loss stays positive."
)
#: The losses the RQ1 figure plots whose NCA form can go below zero.
NCA_LOSS_COLUMNS = ("proxy_nca_loss", "data_nca_loss", "bound_nca_rhs", "bound_nca_data")


def negative_loss_note(curves: pd.DataFrame) -> str:
    """:data:`NEGATIVE_LOSSES`, and on how many of the plotted rows an NCA loss is negative."""
    columns = [c for c in NCA_LOSS_COLUMNS if c in curves.columns]
    rows = curves[columns].dropna(how="all")
    below = int((rows < 0).any(axis=1).sum())
    return (
        f"{NEGATIVE_LOSSES} In these runs an NCA loss in the figure is below zero "
        f"{share_words(below, len(rows), 'logged rows')}."
    )


HEADER = [
    "method",
    "dataset",
    "loss",
    "seeds",
    "held (paper's bound): triples",
    "held (paper's bound): rows",
    "held (paper's bound, no eps): triples",
    "held (plain): triples",
    "held (plain): rows",
    *TERMS["nca"],
    "gap Q1",
    "gap Q4",
    "eps_max Q1",
    "eps_max Q4",
]


def _cell(interval: Interval | None) -> str:
    return ci_cell(interval, fmt_pct) if interval is not None else "n/a"


def _rows_cell(interval: Interval | None, held: int, total: int) -> str:
    """A share of logged rows, and the count behind it (the words of the answer use it)."""
    return "n/a" if interval is None else f"{ci_cell(interval, fmt_pct)} ({held} of {total})"


def table_row(f: BoundFinding) -> list[str]:
    return [
        f.label,
        f.dataset,
        f.loss,
        str(f.held_plain.n),
        _cell(f.held_paper),
        _rows_cell(f.held_paper_rows, f.rows_held_paper, f.rows_paper),
        _cell(f.held_paper_no_eps),
        _cell(f.held_plain_triples),
        _rows_cell(f.held_plain, f.rows_held_plain, f.rows),
        *(fmt_value(f.terms_last.get(term, math.nan)) for term in TERMS["nca"]),
        fmt_value(f.gap_first),
        fmt_value(f.gap_last),
        fmt_value(f.eps_max_first),
        fmt_value(f.eps_max_last),
    ]


def section(prep: Prepared, found: list[BoundFinding]) -> Section:
    """The RQ1 part of report.md: a table, a figure per dataset, the answer sentences, and
    beside the figures (which follow the body) why their losses can be negative."""
    out = _section(prep, found)
    if out.figures:
        out.body.append(negative_loss_note(prep.curves))
    return out


def _section(prep: Prepared, found: list[BoundFinding]) -> Section:
    out = Section(
        "rq1", "RQ1: does the proxy loss bound the data loss (the paper's bound)?", body=[INTRO]
    )
    for dataset in prep.datasets:
        diag = diagnostic_curves(prep, dataset)
        if diag is not None:
            out.figures[f"rq1_bound_{dataset}"] = plots.bound_figure(
                diag,
                title=f"RQ1 bound on {dataset}: right-hand side or proxy (solid) vs data (dashed)",
            )
    if not found:
        out.body.append(
            "**Cannot be answered from these runs:** no run logged `proxy_nca_loss` and "
            "`data_nca_loss`. Proxy methods log them; run e.g. "
            f"`{hint(prep, SUGGESTED_PROXY, first_group(prep))}`."
        )
        return out
    out.findings.extend(found)
    out.body.append(markdown_table(HEADER, [table_row(f) for f in found]))
    out.body.extend(answer_lines(found, lambda f: f.label, prep.headline_labels))
    return out
