"""RQ5: static vs dynamic proxy assignment, and the number of proxies (docs/protocol.md, RQ5).

Which runs take part, and on which side, comes from the roles their methods declare on their
spec (``proxy_assignment``, ``proxy_count_field``; see :class:`dml_bench.report.runs.MethodRoles`),
and the number of proxies from each run's recorded config, so a plugin method with these roles
is compared like Proxy-NCA. :func:`findings` gives per dataset one row per method variant at its
number of proxies, whether the sweep is complete, and the best static and the best dynamic
setting on each metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from dml_bench.report import plots
from dml_bench.report.comparability import first_group, hint
from dml_bench.report.runs import FRACTION, NONNEGATIVE, Prepared, proxy_count, sweep_series
from dml_bench.report.section import Section, answers
from dml_bench.report.stats import Interval, mean_ci
from dml_bench.report.text import (
    SWEEP_METHODS,
    SWEEP_SETTINGS,
    ci_cell,
    fmt_pct,
    fmt_value,
    interval_text,
    markdown_table,
)

METRICS = ("recall@1", "nmi")
STATIC, DYNAMIC = "static", "dynamic"
#: The collapse diagnostic (``dml_bench.eval.assignment``), final evaluation row of each run.
COLLAPSE = {
    "proxies_in_use": "proxies in use",
    "shared_proxy_pairs": "different-class pairs sharing a proxy",
}


@dataclass(frozen=True)
class CollapseFinding:
    """How spread a dynamic assignment ended (final row; means over seeds)."""

    dataset: str
    label: str
    in_use: Interval
    shared: Interval

    def sentence(self) -> str:
        return (
            f"On {self.dataset}, {self.label} ended with {fmt_value(self.in_use.mean)} proxies in "
            f"use on the diagnostic batch ({interval_text(self.in_use, fmt_value)}) and "
            f"{fmt_pct(self.shared.mean)} of its different-class pairs sharing a proxy "
            f"({interval_text(self.shared, fmt_pct)}); static assignment shares none by "
            f"construction."
        )


@dataclass(frozen=True)
class AssignmentFinding:
    """RQ5 on one dataset: the best static and the best dynamic setting on a metric."""

    dataset: str
    metric: str
    static_label: str
    static_value: Interval
    dynamic_label: str
    dynamic_value: Interval

    def verdict(self) -> str:
        """Which side did better, in words that follow the intervals: "did better" only when
        the two intervals do not overlap; otherwise the higher mean, and why that is not more."""
        s, d = self.static_value, self.dynamic_value
        if fmt_value(s.mean) == fmt_value(d.mean):
            return "the two did equally well"
        side = "static" if s.mean > d.mean else "dynamic"
        if not (s.has_band and d.has_band):
            return (
                f"{side} assignment had the higher mean, but with one seed there is no interval "
                "to tell whether it did better"
            )
        if s.high < d.low or d.high < s.low:
            return f"{side} assignment did better"
        return f"{side} assignment had the higher mean, but the two intervals overlap"

    def sentence(self) -> str:
        better = self.verdict()
        return (
            f"On {self.dataset}, the best static assignment ({self.static_label}) reached "
            f"{self.metric} {fmt_value(self.static_value.mean)} "
            f"({interval_text(self.static_value, fmt_value)}) and the best dynamic one "
            f"({self.dynamic_label}) {fmt_value(self.dynamic_value.mean)} "
            f"({interval_text(self.dynamic_value, fmt_value)}), so {better} in these runs."
        )


@dataclass(frozen=True)
class SweepRow:
    """One method variant at its number of proxies: a table row and a point of the figure."""

    label: str
    series: str  # the figure's line: the label without the proxy count
    assignment: str
    count: float
    seeds: int
    values: dict[str, Interval]
    collapse: dict[str, Interval] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetAssignment:
    """RQ5 on one dataset."""

    dataset: str
    metrics: list[str]
    count_name: str  # what the count is, from the methods' count fields ("proxies per class")
    rows: list[SweepRow]
    complete: bool  # a method of each assignment ran at two proxy counts or more
    best: list[AssignmentFinding]
    collapse: list[CollapseFinding] = field(default_factory=list)


def participants(prep: Prepared) -> pd.DataFrame:
    """Runs of methods that declare an assignment and a proxy count, with columns
    ``assignment``, ``count``, ``count_field`` (from their roles and recorded config)."""
    runs = prep.runs
    if runs.empty:
        return runs
    roles = [prep.roles.get(str(m)) for m in runs["method"]]
    out = runs.assign(
        assignment=[r.proxy_assignment if r else None for r in roles],
        count_field=[r.proxy_count_field if r else None for r in roles],
        count=proxy_count(runs, prep.roles),
    )
    keep = out["assignment"].isin([STATIC, DYNAMIC]) & out["count"].notna()
    return out[keep]


def _best(runs: pd.DataFrame, assignment: str, metric: str) -> tuple[str, Interval] | None:
    here = runs[runs["assignment"] == assignment]
    if here.empty:
        return None
    scored = [
        (str(label), mean_ci(g[metric].to_numpy(dtype=float), bounds=FRACTION))
        for label, g in here.groupby("label")
    ]
    return max(scored, key=lambda item: item[1].mean)


def _complete(runs: pd.DataFrame) -> bool:
    """Whether a method of each assignment ran at two proxy counts or more."""
    per_method = runs.groupby("method")["count"].nunique()
    side = runs.groupby("method")["assignment"].first()
    return all(bool(((side == s) & (per_method >= 2)).any()) for s in (STATIC, DYNAMIC))


def dataset_findings(prep: Prepared, here: pd.DataFrame, dataset: str) -> DatasetAssignment:
    metrics = [m for m in METRICS if m in here.columns and here[m].notna().any()]
    here = here.assign(series=sweep_series(here, prep.roles))
    rows = [
        SweepRow(
            label=str(label),
            series=str(group["series"].iloc[0]),
            assignment=str(group["assignment"].iloc[0]),
            count=float(group["count"].iloc[0]),
            seeds=int(group["seed"].nunique()),
            values={m: mean_ci(group[m].to_numpy(dtype=float), bounds=FRACTION) for m in metrics},
            collapse=_collapse(group),
        )
        for label, group in here.groupby("label")
    ]
    rows.sort(key=lambda r: (r.series, r.count))
    best = []
    for m in metrics:
        static, dynamic = _best(here, STATIC, m), _best(here, DYNAMIC, m)
        if static and dynamic:
            best.append(AssignmentFinding(dataset, m, *static, *dynamic))
    fields = sorted(set(here["count_field"]))
    collapse = [
        CollapseFinding(dataset, r.label, r.collapse["proxies_in_use"], r.collapse[SHARED])
        for r in rows
        if r.assignment == DYNAMIC and len(r.collapse) == len(COLLAPSE)
    ]
    return DatasetAssignment(
        dataset=dataset,
        metrics=metrics,
        count_name=" / ".join(f.replace("_", " ") for f in fields),
        rows=rows,
        complete=_complete(here),
        best=best,
        collapse=collapse,
    )


SHARED = "shared_proxy_pairs"


def _collapse(group: pd.DataFrame) -> dict[str, Interval]:
    """The collapse diagnostic of one variant's runs, where they logged it."""
    return {
        column: mean_ci(group[column].dropna().to_numpy(dtype=float), bounds=bounds)
        for column, bounds in (("proxies_in_use", NONNEGATIVE), (SHARED, FRACTION))
        if column in group.columns and group[column].notna().any()
    }


def findings(prep: Prepared) -> list[DatasetAssignment]:
    """One :class:`DatasetAssignment` per dataset with a taking part run; empty when none."""
    runs = participants(prep)
    return [
        dataset_findings(prep, runs[runs["group"] == dataset], dataset)
        for dataset in prep.datasets
        if (runs["dataset"] == dataset).any()
    ]


INTRO = (
    "Static: p(x) is the nearest of the proxies of x's class; dynamic: p(x) is the nearest "
    "proxy overall. Each point is a method config (mean over seeds, 95% t-interval error "
    "bars) at its number of proxies per class. Collapse diagnostic, on the diagnostic batch at "
    "the last evaluation: how many distinct proxies its points are assigned to, and the share "
    "of different-class pairs whose points share a proxy (dynamic assignment can put several "
    "classes on one proxy; static assignment never does)."
)


def figure(ds: DatasetAssignment) -> Figure:
    points = {
        m: [
            plots.SweepPoint(
                r.series,
                r.count,
                r.values[m].mean,
                r.values[m].low,
                r.values[m].high,
                r.values[m].n,
            )
            for r in ds.rows
        ]
        for m in ds.metrics
    }
    return plots.sweep_figure(points, title=f"RQ5: {ds.count_name} on {ds.dataset}")


def _dataset_body(prep: Prepared, ds: DatasetAssignment) -> list[str]:
    logged = [c for c in COLLAPSE if any(c in r.collapse for r in ds.rows)]
    rows = [
        [r.label, f"{r.count:g}", str(r.seeds)]
        + [ci_cell(r.values[m]) for m in ds.metrics]
        + [_collapse_cell(r, c) for c in logged]
        for r in ds.rows
    ]
    header = ["variant", ds.count_name, "seeds", *ds.metrics, *(COLLAPSE[c] for c in logged)]
    body = [f"### {ds.dataset}\n\n" + markdown_table(header, rows)]
    if not ds.complete:
        body.append(
            f"The sweep over the number of proxies is incomplete on {ds.dataset} (it needs at "
            "least two values for a method of each assignment, static and dynamic, e.g. "
            f"`proxy_nca` and `proxy_nca_dynamic`); run "
            f"`{hint(prep, SWEEP_METHODS, ds.dataset, SWEEP_SETTINGS)}`."
        )
    return body


def _collapse_cell(row: SweepRow, column: str) -> str:
    if column not in row.collapse:
        return "n/a"
    return ci_cell(row.collapse[column], fmt_pct if column == SHARED else fmt_value)


def section(prep: Prepared, found: list[DatasetAssignment]) -> Section:
    """The RQ5 part of report.md: a table and a figure per dataset, the answers."""
    out = Section(
        "rq5", "RQ5: static vs dynamic proxy assignment, and the number of proxies", body=[INTRO]
    )
    if not found:
        out.body.append(
            "**Cannot be answered from these runs:** no run of a proxy method with a declared "
            "assignment (static or dynamic, e.g. `proxy_nca` / `proxy_nca_dynamic`) and a "
            "recorded number of proxies; run "
            f"`{hint(prep, SWEEP_METHODS, first_group(prep), SWEEP_SETTINGS)}`."
        )
        return out
    for ds in found:
        out.figures[f"rq5_proxies_{ds.dataset}"] = figure(ds)
        out.body.extend(_dataset_body(prep, ds))
        out.findings.extend(ds.best)
    best = [f for ds in found for f in ds.best]
    out.body.extend(answers(best))
    collapse = [f for ds in found for f in ds.collapse]
    out.findings.extend(collapse)
    out.body.extend(answers(collapse))
    return out
