"""Answers to the paper's research questions (PAPER.md, RQ1-RQ5) from whatever runs exist.

Each answer is a small frozen dataclass of the numbers it rests on, and its one-sentence summary
is built only from those fields (formatted by the helpers below), so a test can check every
number of a sentence against the values it came from. Each section also says, when the runs
cannot answer its question, which ``dml-bench run ...`` command would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dml_bench.report import plots
from dml_bench.report.stats import (
    Interval,
    Ratio,
    TestResult,
    compare_seeds,
    first_reaching,
    mean_ci,
    ratio_of_means_ci,
)
from dml_bench.report.tables import eval_metrics, with_labels
from dml_bench.store.read import RunTable, read_retrievals

REFERENCE_METHOD = "proxy_nca"
#: Ranges of what the report averages: every metric, ``held`` and order agreement are fractions;
#: steps and seconds to a target are non-negative (intervals are clipped to them, see mean_ci).
FRACTION = (0.0, 1.0)
NONNEGATIVE = (0.0, math.inf)
PROXY_COUNT_NAMES = ("proxies_per_class", "num_proxies")
PROXY_COUNT_FIELDS = tuple(f"cfg.{name}" for name in PROXY_COUNT_NAMES)
SWEEP_COMMAND = (
    "dml-bench run --methods proxy_nca,proxy_nca_dynamic "
    "--set proxy_nca.proxies_per_class=1,2,4 "
    "--set proxy_nca_dynamic.proxies_per_class=0.5,1,2 --seeds 0,1,2"
)


# ---------------------------------------------------------------- number formatting
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


def interval_text(iv: Interval, fmt: Callable[[float], str]) -> str:
    """'95% CI a to b, 3 seeds' or 'one seed, so no interval'."""
    if iv.n < 2:
        return "one seed, so no interval"
    return f"{fmt_confidence(iv.confidence)} CI {fmt(iv.low)} to {fmt(iv.high)}, {iv.n} seeds"


def ratio_text(r: Ratio) -> str:
    if not r.has_band:
        return "no interval: each method needs at least 2 seeds"
    return (
        f"{fmt_confidence(r.confidence)} bootstrap CI {fmt_ratio(r.low)} to "
        f"{fmt_ratio(r.high)}, "
        f"{r.n_denominator} vs {r.n_numerator} seeds"
    )


def run_command(methods: str, dataset: str, extra: str = "--seeds 0,1,2") -> str:
    return f"dml-bench run --methods {methods} --dataset {dataset} {extra}"


# ---------------------------------------------------------------- shared preparation
@dataclass(frozen=True)
class Prepared:
    """Runs and curves with a ``label`` column (variant, plus sampler where rows split)."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    table: RunTable

    @property
    def datasets(self) -> list[str]:
        return sorted(self.runs["dataset"].unique())


def prepare(table: RunTable) -> Prepared:
    runs = with_labels(table.runs)
    labels = runs.set_index("run_id")["label"]
    curves = table.curves.copy()
    curves["label"] = curves["run_id"].map(labels)
    order = {lab: i for i, lab in enumerate(_label_order(runs))}
    curves = curves.assign(_o=curves["label"].map(order)).sort_values(["_o", "run_id", "step"])
    return Prepared(runs=runs, curves=curves.drop(columns="_o"), table=table)


def _label_order(runs: pd.DataFrame) -> list[str]:
    ordered = runs.assign(_pair=(runs["family"] != "proxy").astype(int))
    ordered = ordered.sort_values(["_pair", "method", "variant", "sampler"], kind="stable")
    return list(dict.fromkeys(ordered["label"]))


class Finding(Protocol):
    """An answer with a one-sentence summary built from its own fields."""

    def sentence(self) -> str: ...


@dataclass
class Section:
    """One part of report.md: a title, markdown paragraphs, figures, and its findings."""

    key: str
    title: str
    body: list[str] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def is_reference(label: str) -> bool:
    """Whether a row label is the default Proxy-NCA (possibly split by sampler or run options)."""
    return label == REFERENCE_METHOD or label.startswith(f"{REFERENCE_METHOD} ")


def answer_lines(findings: Sequence[Finding], label_of: Callable[[Finding], str]) -> list[str]:
    """The sentences to print: those about the default Proxy-NCA when there are any, else all.

    Tables hold every method; the prose answers the paper's question, which is about Proxy-NCA.
    """
    headline = [f for f in findings if is_reference(label_of(f))] or list(findings)
    return [f"**Answer.** {f.sentence()}" for f in headline]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ci_cell(iv: Interval, fmt: Callable[[float], str] = fmt_value) -> str:
    if iv.n == 0:
        return "-"
    if iv.n < 2:
        return f"{fmt(iv.mean)} (1 seed)"
    return f"{fmt(iv.mean)} [{fmt(iv.low)}, {fmt(iv.high)}]"


def _quarters(curve: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows in the first and in the last quarter of the run's step range."""
    lo, hi = float(curve["step"].min()), float(curve["step"].max())
    quarter = (hi - lo) / 4
    return curve[curve["step"] <= lo + quarter], curve[curve["step"] >= hi - quarter]


def _has(frame: pd.DataFrame, *columns: str) -> bool:
    return all(c in frame.columns and frame[c].notna().any() for c in columns)


# ---------------------------------------------------------------- RQ1: the bound
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
        first, last = _quarters(rows)
        gap_first.append(float((first[proxy_col] - first[data_col]).mean()))
        gap_last.append(float((last[proxy_col] - last[data_col]).mean()))
        for kind in ("max", "mean"):
            col = f"eps_{kind}"
            has = col in rows.columns
            eps[f"{kind}_first"].append(float(first[col].mean()) if has else math.nan)
            eps[f"{kind}_last"].append(float(last[col].mean()) if has else math.nan)
    return BoundFinding(
        label=label,
        dataset=dataset,
        loss="NCA" if loss == "nca" else "triplet",
        held=mean_ci(held, bounds=FRACTION),
        gap_first=_nanmean(gap_first),
        gap_last=_nanmean(gap_last),
        eps_max_first=_nanmean(eps["max_first"]),
        eps_max_last=_nanmean(eps["max_last"]),
        eps_mean_first=_nanmean(eps["mean_first"]),
        eps_mean_last=_nanmean(eps["mean_last"]),
    )


def _nanmean(values: Sequence[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def rq1_bound(prep: Prepared) -> Section:
    section = Section("rq1", "RQ1: does the proxy loss bound the data loss?")
    section.body.append(
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
    rows = []
    for dataset in prep.datasets:
        curves = prep.curves[prep.curves["dataset"] == dataset]
        if not _has(curves, "proxy_nca_loss", "data_nca_loss"):
            continue
        diag = curves[curves["proxy_nca_loss"].notna()]
        for label, group in diag.groupby("label", sort=False):
            for loss in ("nca", "triplet"):
                if not _has(group, f"proxy_{loss}_loss", f"data_{loss}_loss"):
                    continue
                finding = bound_finding(group, str(label), dataset, loss)
                section.findings.append(finding)
                rows.append(
                    [
                        finding.label,
                        dataset,
                        finding.loss,
                        str(finding.held.n),
                        ci_cell(finding.held, fmt_pct),
                        fmt_value(finding.gap_first),
                        fmt_value(finding.gap_last),
                        fmt_value(finding.eps_mean_first),
                        fmt_value(finding.eps_mean_last),
                        fmt_value(finding.eps_max_first),
                        fmt_value(finding.eps_max_last),
                    ]
                )
        section.figures[f"rq1_bound_{dataset}"] = plots.bound_figure(
            diag, title=f"RQ1 bound on {dataset}: proxy (solid) vs data (dashed) loss"
        )
    if not rows:
        section.body.append(
            "**Cannot be answered from these runs:** no run logged `proxy_nca_loss` and "
            "`data_nca_loss`. Proxy methods log them; run e.g. "
            f"`{run_command('proxy_nca', prep.datasets[0] if prep.datasets else 'hershey')}`."
        )
        return section
    section.body.append(
        markdown_table(
            [
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
            ],
            rows,
        )
    )
    section.body.extend(answer_lines(section.findings, lambda f: f.label))  # type: ignore[attr-defined]
    return section


# ---------------------------------------------------------------- RQ2: convergence
@dataclass(frozen=True)
class ConvergenceFinding:
    """RQ2 for one method on one dataset: steps/seconds to a fraction of its best Recall@1."""

    label: str
    dataset: str
    family: str
    target_fraction: float
    best: Interval
    steps: Interval
    seconds: Interval
    steps_per_seed: dict[int, float]
    seconds_per_seed: dict[int, float]

    def sentence(self) -> str:
        return (
            f"On {self.dataset}, {self.label} reached {fmt_pct(self.target_fraction)} of its best "
            f"Recall@1 ({fmt_value(self.best.mean)}) after {fmt_steps(self.steps.mean)} steps "
            f"({interval_text(self.steps, fmt_steps)}) and {fmt_seconds(self.seconds.mean)} "
            f"({interval_text(self.seconds, fmt_seconds)}); without a method of the other family "
            "on this dataset there is no speed-up to compare with the paper's 3x."
        )


@dataclass(frozen=True)
class SpeedupFinding:
    """Speed-up of a proxy method over a pair method: pair's mean time-to-target / proxy's."""

    proxy: str
    pair: str
    dataset: str
    target_fraction: float
    steps: Ratio
    seconds: Ratio

    def sentence(self) -> str:
        return (
            f"On {self.dataset}, {self.proxy} reached {fmt_pct(self.target_fraction)} of its best "
            f"Recall@1 with a speed-up of {fmt_ratio(self.steps.value)} in steps over "
            f"{self.pair} ({ratio_text(self.steps)}) and {fmt_ratio(self.seconds.value)} in "
            f"wall-clock seconds ({ratio_text(self.seconds)}); the paper reports about 3x "
            "(Fig. 1, Cars196)."
        )


def convergence_finding(
    curves: pd.DataFrame, label: str, dataset: str, family: str, fraction: float
) -> ConvergenceFinding:
    steps, seconds, best = {}, {}, []
    for _, curve in curves.groupby("run_id"):
        seed = int(curve["seed"].iloc[0])
        steps[seed] = first_reaching(
            curve["step"].to_numpy(), curve["recall@1"].to_numpy(), fraction
        )
        seconds[seed] = first_reaching(
            curve["elapsed_s"].to_numpy(), curve["recall@1"].to_numpy(), fraction
        )
        best.append(float(curve["recall@1"].max()))
    return ConvergenceFinding(
        label=label,
        dataset=dataset,
        family=family,
        target_fraction=fraction,
        best=mean_ci(best, bounds=FRACTION),
        steps=mean_ci(list(steps.values()), bounds=NONNEGATIVE),
        seconds=mean_ci(list(seconds.values()), bounds=NONNEGATIVE),
        steps_per_seed=steps,
        seconds_per_seed=seconds,
    )


def rq2_convergence(prep: Prepared, target_fraction: float) -> Section:
    section = Section("rq2", "RQ2: how fast does each method converge?")
    section.body.append(
        f"Recall@1 on the test classes against training steps and against training wall-clock "
        f"seconds (evaluation time excluded); lines are means over seeds with a 95% t-interval "
        f"band (no band for a method with one seed). Time to target: the first evaluated step "
        f"(or second) at which a run reaches {fmt_pct(target_fraction)} of its own best "
        f"Recall@1, so it is resolved only to the evaluation interval. Speed-up = mean time of "
        f"the pair method / mean time of the proxy method, with a 95% percentile bootstrap "
        f"interval resampling each method's seeds independently (10,000 resamples, generator "
        f"seed 0)."
    )
    rows, speed_rows = [], []
    for dataset in prep.datasets:
        curves = prep.curves[prep.curves["dataset"] == dataset]
        if not _has(curves, "recall@1"):
            continue
        section.figures[f"rq2_recall_vs_step_{dataset}"] = plots.curve_figure(
            curves,
            y="recall@1",
            x="step",
            xlabel="training step",
            ylabel="Recall@1",
            title=f"RQ2: Recall@1 vs step on {dataset}",
            bounds=FRACTION,
        )
        section.figures[f"rq2_recall_vs_time_{dataset}"] = plots.curve_figure(
            curves,
            y="recall@1",
            x="elapsed_s",
            xlabel="training time (s)",
            ylabel="Recall@1",
            title=f"RQ2: Recall@1 vs training time on {dataset}",
            bounds=FRACTION,
        )
        found = []
        for label, group in curves.groupby("label", sort=False):
            family = str(group["family"].iloc[0])
            finding = convergence_finding(group, str(label), dataset, family, target_fraction)
            found.append(finding)
            rows.append(
                [
                    finding.label,
                    dataset,
                    family,
                    str(finding.best.n),
                    ci_cell(finding.best),
                    ci_cell(finding.steps, fmt_steps),
                    ci_cell(finding.seconds, fmt_seconds),
                ]
            )
        for proxy in (f for f in found if f.family == "proxy"):
            for pair in (f for f in found if f.family == "pair"):
                speed = SpeedupFinding(
                    proxy=proxy.label,
                    pair=pair.label,
                    dataset=dataset,
                    target_fraction=target_fraction,
                    steps=ratio_of_means_ci(
                        list(pair.steps_per_seed.values()), list(proxy.steps_per_seed.values())
                    ),
                    seconds=ratio_of_means_ci(
                        list(pair.seconds_per_seed.values()), list(proxy.seconds_per_seed.values())
                    ),
                )
                section.findings.append(speed)
                speed_rows.append(
                    [
                        speed.proxy,
                        speed.pair,
                        dataset,
                        f"{speed.steps.n_denominator} vs {speed.steps.n_numerator}",
                        _ratio_cell(speed.steps),
                        _ratio_cell(speed.seconds),
                    ]
                )
        if not any(f.family == "pair" for f in found) or not any(
            f.family == "proxy" for f in found
        ):
            section.findings.extend(found)
            section.body.append(
                f"**No speed-up on {dataset}:** it needs both a proxy method and a pair method "
                f"there; run `{run_command('proxy_nca,triplet_semihard', dataset)}`."
            )
    if not rows:
        section.body.append(
            "**Cannot be answered from these runs:** no run logged `recall@1`; run "
            f"`{run_command('proxy_nca,triplet_semihard', 'hershey')}`."
        )
        return section
    section.body.append(
        markdown_table(
            [
                "method",
                "dataset",
                "family",
                "seeds",
                "best Recall@1",
                f"steps to {fmt_pct(target_fraction)}",
                f"seconds to {fmt_pct(target_fraction)}",
            ],
            rows,
        )
    )
    if speed_rows:
        section.body.append(
            markdown_table(
                [
                    "proxy method",
                    "pair method",
                    "dataset",
                    "seeds (proxy vs pair)",
                    "speed-up (steps)",
                    "speed-up (seconds)",
                ],
                speed_rows,
            )
        )
    section.body.extend(
        answer_lines(section.findings, lambda f: str(getattr(f, "proxy", getattr(f, "label", ""))))
    )
    return section


def _ratio_cell(r: Ratio) -> str:
    if not r.has_band:
        return fmt_ratio(r.value)
    return f"{fmt_ratio(r.value)} [{fmt_ratio(r.low)}, {fmt_ratio(r.high)}]"


# ---------------------------------------------------------------- RQ3: order of distances
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


def rq3_order(prep: Prepared) -> Section:
    section = Section("rq3", "RQ3: do proxies keep the order of distances?")
    section.body.append(
        "`order_agreement`: fraction of sampled triplets (x, y, z) of the diagnostic batch for "
        "which d(x, y) < d(x, z) and d(x, p(y)) < d(x, p(z)) agree; mean over seeds with 95% "
        "t-intervals."
    )
    rows = []
    for dataset in prep.datasets:
        curves = prep.curves[prep.curves["dataset"] == dataset]
        if not _has(curves, "order_agreement"):
            continue
        diag = curves[curves["order_agreement"].notna()]
        section.figures[f"rq3_order_{dataset}"] = plots.curve_figure(
            diag,
            y="order_agreement",
            x="step",
            xlabel="training step",
            ylabel="order agreement",
            title=f"RQ3: order agreement on {dataset}",
            bounds=FRACTION,
        )
        for label, group in diag.groupby("label", sort=False):
            by_run = group.groupby("run_id")["order_agreement"]
            finding = OrderFinding(
                str(label),
                dataset,
                mean_ci(by_run.first().to_numpy(), bounds=FRACTION),
                mean_ci(by_run.last().to_numpy(), bounds=FRACTION),
            )
            section.findings.append(finding)
            rows.append(
                [
                    finding.label,
                    dataset,
                    str(finding.end.n),
                    ci_cell(finding.start, fmt_pct),
                    ci_cell(finding.end, fmt_pct),
                ]
            )
    if not rows:
        section.body.append(
            "**Cannot be answered from these runs:** no run logged `order_agreement` (proxy "
            f"methods do); run `{run_command('proxy_nca', 'hershey')}`."
        )
        return section
    section.body.append(markdown_table(["method", "dataset", "seeds", "first row", "end"], rows))
    section.body.extend(answer_lines(section.findings, lambda f: f.label))  # type: ignore[attr-defined]
    return section


# ---------------------------------------------------------------- RQ4: retrieval and clustering
#: Paper numbers (percent). (dataset, paper method, source note, {metric: value}).
PAPER_NUMBERS: tuple[tuple[str, str, str, dict[str, float]], ...] = (
    (
        "cub200",
        "Proxy-NCA",
        "paper",
        {"recall@1": 49.21, "recall@2": 61.90, "recall@4": 67.90, "recall@8": 72.40, "nmi": 59.53},
    ),
    (
        "cars196",
        "Proxy-NCA",
        "paper",
        {"recall@1": 73.22, "recall@2": 82.42, "recall@4": 86.36, "recall@8": 88.68, "nmi": 64.90},
    ),
    ("sop", "Proxy-NCA", "paper", {"recall@1": 73.73}),
    ("cub200", "Triplet semi-hard", "paper (unverified)", {"recall@1": 42.59}),
    ("cars196", "Triplet semi-hard", "paper (unverified)", {"recall@1": 51.54}),
    ("sop", "Triplet semi-hard", "paper (unverified)", {"recall@1": 66.67}),
    ("cub200", "Lifted structure", "paper (unverified)", {"recall@1": 43.57}),
    ("cars196", "Lifted structure", "paper (unverified)", {"recall@1": 52.98}),
    ("sop", "Lifted structure", "paper (unverified)", {"recall@1": 62.46}),
    ("cub200", "N-pairs", "paper (unverified)", {"recall@1": 45.37}),
    ("cars196", "N-pairs", "paper (unverified)", {"recall@1": 53.90}),
    ("sop", "N-pairs", "paper (unverified)", {"recall@1": 66.41}),
    (
        "cub200",
        "ProxyNCA",
        "Reality Check, 512-d (unverified)",
        {"p@1": 65.69, "r_precision": 35.14, "map@r": 24.21},
    ),
    (
        "cars196",
        "ProxyNCA",
        "Reality Check, 512-d (unverified)",
        {"p@1": 83.56, "r_precision": 35.62, "map@r": 25.38},
    ),
    (
        "sop",
        "ProxyNCA",
        "Reality Check, 512-d (unverified)",
        {"p@1": 75.89, "r_precision": 50.10, "map@r": 47.22},
    ),
    (
        "cub200",
        "Triplet",
        "Reality Check, 512-d (unverified)",
        {"p@1": 64.24, "r_precision": 34.55, "map@r": 23.69},
    ),
    (
        "cars196",
        "Triplet",
        "Reality Check, 512-d (unverified)",
        {"p@1": 79.13, "r_precision": 33.71, "map@r": 23.02},
    ),
)


@dataclass(frozen=True)
class SignificanceFinding:
    """RQ4: the reference method (Proxy-NCA) against one other method on one metric."""

    reference: str
    other: str
    dataset: str
    metric: str
    reference_value: Interval
    other_value: Interval
    test: TestResult

    def sentence(self) -> str:
        if self.test.done:
            verdict = (
                "significant at the 5% level"
                if self.test.p_value < 0.05
                else ("not significant at the 5% level")
            )
            test = f"{self.test.test}, p = {fmt_p(self.test.p_value)}, {verdict}"
        else:
            test = f"no test: {self.test.reason}"
        return (
            f"On {self.dataset}, {self.reference} reached {self.metric} "
            f"{fmt_value(self.reference_value.mean)} "
            f"({interval_text(self.reference_value, fmt_value)}) against "
            f"{fmt_value(self.other_value.mean)} for {self.other} "
            f"({interval_text(self.other_value, fmt_value)}), a difference of "
            f"{fmt_value(self.test.difference)} ({test})."
        )


def rq4_retrieval(prep: Prepared) -> Section:
    section = Section("rq4", "RQ4: zero-shot retrieval and clustering")
    section.body.append(
        "Final metrics (last evaluation) on the held-out test classes, mean over seeds with "
        "95% t-intervals in brackets. Proxy-NCA (`proxy_nca`) is tested against every other "
        "method on the same dataset: a paired t-test when both ran on the same seeds (runs with "
        "one seed share the data split and the evaluation queries, so the per-seed difference "
        "removes that shared variation), Welch's t-test otherwise (no equal-variance "
        "assumption); no test with fewer than 2 seeds per method. Tests are two-sided and "
        "not corrected for multiple comparisons."
    )
    runs = prep.runs
    metrics = eval_metrics(runs.columns)
    if not metrics:
        section.body.append("**Cannot be answered from these runs:** no run logged test metrics.")
        return section
    for dataset in prep.datasets:
        here = runs[runs["dataset"] == dataset]
        ds_metrics = [m for m in metrics if here[m].notna().any()]
        labels = _label_order(here)
        rows = []
        for label in labels:
            group = here[here["label"] == label]
            rows.append(
                [label, str(group["seed"].nunique())]
                + [
                    ci_cell(mean_ci(group[m].to_numpy(dtype=float), bounds=FRACTION))
                    for m in ds_metrics
                ]
            )
        section.body.append(
            f"### {dataset}\n\n" + markdown_table(["method", "seeds", *ds_metrics], rows)
        )
        paper = _paper_rows(here, dataset, ds_metrics, labels)
        if paper:
            section.body.append(paper)
        refs = [
            lab
            for lab in labels
            if here[here["label"] == lab]["variant"].iloc[0] == REFERENCE_METHOD
        ]
        if not refs:
            section.body.append(
                f"No `{REFERENCE_METHOD}` run on {dataset}, so no significance test; run "
                f"`{run_command(REFERENCE_METHOD, dataset)}`."
            )
            continue
        baselines = list(dict.fromkeys(here[here["family"] == "pair"]["label"]))
        if not baselines:
            section.body.append(
                f"No pair-based baseline ran on {dataset}, so Proxy-NCA is not tested against "
                f"one; run e.g. `{run_command('proxy_nca,triplet_semihard', dataset)}`."
            )
        tests = [
            _significance(here, ref, other, dataset, metric)
            for ref in refs
            for other in baselines
            for metric in [m for m in ("recall@1", "nmi") if m in ds_metrics]
        ]
        if tests:
            section.body.append(_significance_table(tests))
        section.findings.extend(tests)
    section.body.extend(answer_lines(section.findings, lambda f: f.reference))  # type: ignore[attr-defined]
    return section


def _significance_table(tests: Sequence[SignificanceFinding]) -> str:
    """One row per test: both means, the difference, the test and its p-value."""
    rows = []
    for t in tests:
        verdict = (
            ("p < 0.05" if t.test.p_value < 0.05 else "p >= 0.05") if t.test.done else "no test"
        )
        rows.append(
            [
                t.reference,
                t.other,
                t.dataset,
                t.metric,
                f"{t.reference_value.n} vs {t.other_value.n}",
                fmt_value(t.reference_value.mean),
                fmt_value(t.other_value.mean),
                fmt_value(t.test.difference),
                t.test.test if t.test.done else t.test.reason,
                fmt_p(t.test.p_value) if t.test.done else "-",
                verdict,
            ]
        )
    return markdown_table(
        [
            "reference",
            "other",
            "dataset",
            "metric",
            "seeds",
            "reference mean",
            "other mean",
            "difference",
            "test",
            "p",
            "",
        ],
        rows,
    )


def _significance(
    runs: pd.DataFrame, ref: str, other: str, dataset: str, metric: str
) -> SignificanceFinding:
    def by_seed(label: str) -> dict[int, float]:
        group = runs[runs["label"] == label]
        return {int(s): float(v) for s, v in group.groupby("seed")[metric].mean().items()}

    a, b = by_seed(ref), by_seed(other)
    return SignificanceFinding(
        ref,
        other,
        dataset,
        metric,
        mean_ci(list(a.values()), bounds=FRACTION),
        mean_ci(list(b.values()), bounds=FRACTION),
        compare_seeds(a, b),
    )


def _paper_rows(runs: pd.DataFrame, dataset: str, metrics: list[str], labels: list[str]) -> str:
    """Our numbers (in percent) beside the paper's for the paper's datasets."""
    entries = [e for e in PAPER_NUMBERS if e[0] == dataset]
    if not entries:
        return ""
    rows = []
    for label in labels:
        group = runs[runs["label"] == label]
        rows.append(
            [label, f"this benchmark ({group['seed'].nunique()} seeds)"]
            + [_percent_cell(group[m]) for m in metrics]
        )
    for _, method, source, values in entries:
        rows.append([method, source] + [f"{values[m]:.2f}" if m in values else "" for m in metrics])
    return (
        f"Side by side with the paper on {dataset} (percent; our values are means over seeds; "
        "'unverified' numbers were quoted by others, see PAPER.md):\n\n"
        + markdown_table(["method", "source", *metrics], rows)
    )


def _percent_cell(values: pd.Series) -> str:
    x = values.astype(float)
    if not x.notna().any():
        return ""
    scale = 100.0 if float(x.abs().max()) <= 1.0 else 1.0  # metrics are stored as fractions
    return f"{scale * float(x.mean()):.2f}"


# ---------------------------------------------------------------- RQ5: proxy assignment
@dataclass(frozen=True)
class AssignmentFinding:
    """RQ5 on one dataset: the best static and the best dynamic setting on a metric."""

    dataset: str
    metric: str
    static_label: str
    static_value: Interval
    dynamic_label: str
    dynamic_value: Interval

    def sentence(self) -> str:
        a, b = fmt_value(self.static_value.mean), fmt_value(self.dynamic_value.mean)
        better = (
            "the two did equally well"
            if a == b
            else "static assignment did better"
            if self.static_value.mean > self.dynamic_value.mean
            else "dynamic assignment did better"
        )
        return (
            f"On {self.dataset}, the best static assignment ({self.static_label}) reached "
            f"{self.metric} {fmt_value(self.static_value.mean)} "
            f"({interval_text(self.static_value, fmt_value)}) and the best dynamic one "
            f"({self.dynamic_label}) {fmt_value(self.dynamic_value.mean)} "
            f"({interval_text(self.dynamic_value, fmt_value)}), so {better} in these runs."
        )


STATIC, DYNAMIC = "proxy_nca", "proxy_nca_dynamic"


def _proxy_count_column(runs: pd.DataFrame) -> str | None:
    return next((c for c in PROXY_COUNT_FIELDS if c in runs.columns), None)


def rq5_assignment(prep: Prepared) -> Section:
    section = Section("rq5", "RQ5: static vs dynamic proxy assignment, and the number of proxies")
    section.body.append(
        "Static: p(x) is the nearest of the proxies of x's class; dynamic: p(x) is the nearest "
        "proxy overall. Each point is a method config (mean over seeds, 95% t-interval error "
        "bars) at its number of proxies per class."
    )
    runs = prep.runs
    column = _proxy_count_column(runs)
    assign = runs[runs["method"].isin([STATIC, DYNAMIC])]
    if assign.empty or column is None:
        section.body.append(
            "**Cannot be answered from these runs:** no `proxy_nca` / `proxy_nca_dynamic` runs "
            f"with a recorded number of proxies; run `{SWEEP_COMMAND}`."
        )
        return section
    for dataset in prep.datasets:
        here = assign[assign["dataset"] == dataset]
        if here.empty:
            continue
        metrics = [m for m in ("recall@1", "nmi") if m in here.columns and here[m].notna().any()]
        points: dict[str, list[plots.SweepPoint]] = {m: [] for m in metrics}
        rows = []
        for label, group in sorted(here.groupby("label"), key=lambda item: _sweep_order(item)):
            count = float(group[column].iloc[0])
            intervals = [mean_ci(group[m].to_numpy(dtype=float), bounds=FRACTION) for m in metrics]
            for m, iv in zip(metrics, intervals, strict=True):
                points[m].append(
                    plots.SweepPoint(sweep_series(str(label)), count, iv.mean, iv.half_width, iv.n)
                )
            rows.append(
                [str(label), f"{count:g}", str(group["seed"].nunique())]
                + [ci_cell(iv) for iv in intervals]
            )
        section.figures[f"rq5_proxies_{dataset}"] = plots.sweep_figure(
            points, title=f"RQ5: proxies per class on {dataset}"
        )
        section.body.append(
            f"### {dataset}\n\n"
            + markdown_table(["variant", "proxies per class", "seeds", *metrics], rows)
        )
        counts = here.groupby("method")[column].nunique()
        if not (counts.get(STATIC, 0) >= 2 and counts.get(DYNAMIC, 0) >= 2):
            section.body.append(
                f"The sweep over the number of proxies is incomplete on {dataset} (it needs at "
                f"least two values for each of `{STATIC}` and `{DYNAMIC}`); run "
                f"`{SWEEP_COMMAND} --dataset {dataset}`."
            )
        for m in metrics:
            best_static = _best(here, STATIC, m)
            best_dynamic = _best(here, DYNAMIC, m)
            if best_static and best_dynamic:
                section.findings.append(
                    AssignmentFinding(
                        dataset, m, best_static[0], best_static[1], best_dynamic[0], best_dynamic[1]
                    )
                )
    section.body.extend(answer_lines(section.findings, lambda f: STATIC))
    return section


_VARIANT = re.compile(r"^(?P<method>[^\[\s]+)\[(?P<params>[^\]]*)\](?P<rest>.*)$")


def sweep_series(label: str) -> str:
    """The line a run belongs to in the RQ5 figure: its label without the proxy-count setting.

    Runs that differ in anything else (sampler, softmax scale, ...) are other lines, so a line
    varies the number of proxies alone: ``proxy_nca[proxies_per_class=2]`` is on the line
    ``proxy_nca``, ``proxy_nca[m_per_class=4]`` is a line of its own.
    """
    match = _VARIANT.match(label)
    if match is None:
        return label
    kept = [
        item
        for item in match["params"].split(",")
        if item.split("=")[0].strip() not in PROXY_COUNT_NAMES
    ]
    method = f"{match['method']}[{','.join(kept)}]" if kept else match["method"]
    return method + match["rest"]


def _sweep_order(item: tuple[object, pd.DataFrame]) -> tuple[str, float]:
    label, group = item
    return sweep_series(str(label)), float(group[_proxy_count_column(group) or "seed"].iloc[0])


def _best(runs: pd.DataFrame, method: str, metric: str) -> tuple[str, Interval] | None:
    here = runs[runs["method"] == method]
    if here.empty:
        return None
    scored = [
        (str(label), mean_ci(g[metric].to_numpy(dtype=float), bounds=FRACTION))
        for label, g in here.groupby("label")
    ]
    return max(scored, key=lambda item: item[1].mean)


# ---------------------------------------------------------------- qualitative figure
def qualitative(
    prep: Prepared, n_queries: int = 3, top_k: int = 5, max_methods: int = 6
) -> Section:
    section = Section("qualitative", "Qualitative retrievals")
    section.body.append(
        f"For {n_queries} test queries (drawn by the seed, so the same for every method), the "
        f"top-{top_k} retrievals of each method; green frame: same class as the query, red: "
        "another class."
    )
    for dataset in prep.datasets:
        here = prep.runs[prep.runs["dataset"] == dataset]
        blocks: list[plots.RetrievalBlock] = []
        seed_used = None
        for seed in sorted(here["seed"].unique()):
            blocks = _blocks_for_seed(prep, here[here["seed"] == seed], max_methods)
            if blocks:
                seed_used = int(seed)
                break
        if not blocks:
            continue
        section.figures[f"qualitative_{dataset}"] = plots.retrieval_figure(
            blocks,
            n_queries=n_queries,
            top_k=top_k,
            title=f"Retrievals on {dataset} (seed {seed_used})",
        )
    if not section.figures:
        section.body.append("No run has a readable retrievals.npz, so there is no figure.")
    return section


def _blocks_for_seed(
    prep: Prepared, runs: pd.DataFrame, max_methods: int
) -> list[plots.RetrievalBlock]:
    blocks = []
    for label in _qualitative_labels(runs)[:max_methods]:
        run_id = runs[runs["label"] == label]["run_id"].iloc[0]
        data = read_retrievals(prep.table.run_dir(str(run_id)))
        if data is None:
            continue
        blocks.append(
            plots.RetrievalBlock(
                label=label,
                query_images=data["query_images"],
                neighbor_images=data["neighbor_images"],
                query_labels=data["query_labels"],
                neighbor_labels=data["neighbor_labels"],
            )
        )
    return blocks


def _qualitative_labels(runs: pd.DataFrame) -> list[str]:
    """The methods as registered (no changed parameters) first, then their variants: with a
    sweep in the results, the figure still shows the proxy methods beside the pair baselines."""
    labels = _label_order(runs)
    plain = set(runs.loc[runs["variant"] == runs["method"], "label"])
    return [lab for lab in labels if lab in plain] + [lab for lab in labels if lab not in plain]


def all_sections(prep: Prepared, target_fraction: float) -> list[Section]:
    return [
        rq1_bound(prep),
        rq2_convergence(prep, target_fraction),
        rq3_order(prep),
        rq4_retrieval(prep),
        rq5_assignment(prep),
        qualitative(prep),
    ]
