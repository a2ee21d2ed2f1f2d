"""RQ4: zero-shot retrieval and clustering on the held-out classes (docs/protocol.md, RQ4).

:func:`findings` gives, per dataset, every method's final test metrics (mean over seeds with a
t-interval), our values in percent beside the published ones (:mod:`.paper_numbers`), and a
significance test of each static-assignment proxy method run as registered (the paper's method)
against each pair-based method, roles taken from the runs (see :mod:`.runs`), so a plugin that
declares the role is tested like Proxy-NCA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from dml_bench.report.comparability import both_families_hint, hint
from dml_bench.report.paper_numbers import PaperFigure, figures_for
from dml_bench.report.runs import FRACTION, Prepared, label_order
from dml_bench.report.section import Section, answer_lines
from dml_bench.report.stats import Interval, TestResult, compare_seeds, mean_ci
from dml_bench.report.tables import eval_metrics
from dml_bench.report.text import (
    SUGGESTED_PROXY,
    ci_cell,
    fmt_p,
    fmt_percent_points,
    fmt_value,
    interval_text,
    markdown_table,
)

#: The metrics tested for significance (the paper's headline retrieval and clustering metrics).
TESTED_METRICS = ("recall@1", "nmi")


@dataclass(frozen=True)
class SignificanceFinding:
    """RQ4: a reference (proxy) method against one other method on one metric."""

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


@dataclass(frozen=True)
class MetricAnswer:
    """RQ4's answer for one reference method and one metric: its value, and the pair methods it
    was significantly above, below, not different from, or not tested against (the tests are
    in the table beside it). One sentence per metric instead of one per test."""

    reference: str
    dataset: str
    metric: str
    value: Interval
    above: list[tuple[str, float]]
    below: list[tuple[str, float]]
    same: list[tuple[str, float]]
    untested: list[tuple[str, float]]

    def sentence(self) -> str:
        def names(items: list[tuple[str, float]]) -> str:
            return ", ".join(f"{label} ({fmt_value(v)})" for label, v in items)

        parts = [
            (self.above, "significantly above"),
            (self.below, "significantly below"),
            (self.same, "not significantly different from"),
            (self.untested, "not tested against (too few seeds)"),
        ]
        said = "; ".join(f"{words} {names(items)}" for items, words in parts if items)
        return (
            f"On {self.dataset}, {self.reference} reached {self.metric} "
            f"{fmt_value(self.value.mean)} ({interval_text(self.value, fmt_value)}): {said} at "
            "the 5% level (tests in the table above)."
        )


def metric_answers(tests: Sequence[SignificanceFinding]) -> list[MetricAnswer]:
    """The tests of each (reference, metric), folded into one :class:`MetricAnswer`."""
    out: list[MetricAnswer] = []
    for key in dict.fromkeys((t.reference, t.metric) for t in tests):
        mine = [t for t in tests if (t.reference, t.metric) == key]
        buckets: dict[str, list[tuple[str, float]]] = {k: [] for k in ("a", "b", "s", "u")}
        for t in mine:
            other = (t.other, t.other_value.mean)
            if not t.test.done:
                buckets["u"].append(other)
            elif t.test.p_value >= 0.05:
                buckets["s"].append(other)
            else:
                buckets["a" if t.test.difference > 0 else "b"].append(other)
        first = mine[0]
        out.append(
            MetricAnswer(
                first.reference,
                first.dataset,
                first.metric,
                first.reference_value,
                buckets["a"],
                buckets["b"],
                buckets["s"],
                buckets["u"],
            )
        )
    return out


@dataclass(frozen=True)
class MethodMetrics:
    """One row of a dataset's table: a method's final metrics over its runs."""

    label: str
    seeds: int
    values: dict[str, Interval]  # metric -> mean over runs, 95% t-interval
    percent: dict[str, float]  # metric -> mean in percent (NaN when not logged)


@dataclass(frozen=True)
class DatasetRetrieval:
    """RQ4 on one dataset."""

    dataset: str
    metrics: list[str]
    methods: list[MethodMetrics]
    paper: list[PaperFigure]
    references: list[str]  # the paper's method(s), see Prepared.headline_labels
    baselines: list[str]  # pair-based methods
    tests: list[SignificanceFinding]


def percent(values: pd.Series) -> float:
    """Mean of a metric in percent (metrics are stored as fractions), NaN when none."""
    x = values.astype(float)
    if not x.notna().any():
        return math.nan
    scale = 100.0 if float(x.abs().max()) <= 1.0 else 1.0
    return scale * float(x.mean())


def method_metrics(runs: pd.DataFrame, label: str, metrics: Sequence[str]) -> MethodMetrics:
    group = runs[runs["label"] == label]
    return MethodMetrics(
        label=label,
        seeds=int(group["seed"].nunique()),
        values={m: mean_ci(group[m].to_numpy(dtype=float), bounds=FRACTION) for m in metrics},
        percent={m: percent(group[m]) for m in metrics},
    )


def significance(
    runs: pd.DataFrame, ref: str, other: str, dataset: str, metric: str
) -> SignificanceFinding:
    """Paired over shared seeds when both ran on the same seeds, Welch otherwise (compare_seeds)."""

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


def dataset_findings(prep: Prepared, dataset: str, metrics: list[str]) -> DatasetRetrieval:
    here = prep.runs[prep.runs["group"] == dataset]
    ds_metrics = [m for m in metrics if here[m].notna().any()]
    labels = label_order(here)
    refs = [lab for lab in labels if lab in prep.headline_labels]
    baselines = list(dict.fromkeys(here[here["family"] == "pair"]["label"]))
    tested = [m for m in TESTED_METRICS if m in ds_metrics]
    tests = [
        significance(here, ref, other, dataset, metric)
        for ref in refs
        for other in baselines
        for metric in tested
    ]
    return DatasetRetrieval(
        dataset=dataset,
        metrics=ds_metrics,
        methods=[method_metrics(here, label, ds_metrics) for label in labels],
        paper=figures_for(prep.dataset_of(dataset)),
        references=refs,
        baselines=baselines,
        tests=tests,
    )


def findings(prep: Prepared) -> list[DatasetRetrieval]:
    """One :class:`DatasetRetrieval` per dataset; empty when no run logged a test metric."""
    metrics = eval_metrics(prep.runs.columns)
    if not metrics:
        return []
    return [dataset_findings(prep, dataset, metrics) for dataset in prep.datasets]


INTRO = (
    "Final metrics (last evaluation) on the held-out test classes, mean over seeds with "
    "95% t-intervals in brackets. The paper's method run with its registered settings "
    "(Proxy-NCA, `proxy_nca`, and any method that declares the same role: static proxy "
    "assignment) is tested against every pair-based method on the same dataset: a paired "
    "t-test when both ran on the same seeds (runs with one seed share the data split and the "
    "evaluation queries, so the per-seed difference removes that shared variation), Welch's "
    "t-test otherwise (no equal-variance assumption); no test with fewer than 2 seeds per "
    "method. Tests are two-sided and not corrected for multiple comparisons."
)


def paper_columns(ds: DatasetRetrieval) -> list[str]:
    """Our metrics and the published ones, in the report's reading order (:func:`eval_metrics`)."""
    return eval_metrics(dict.fromkeys([*ds.metrics, *(k for p in ds.paper for k in p.values)]))


def paper_table(ds: DatasetRetrieval) -> str:
    """Our numbers (in percent) beside the published ones, for the paper's datasets.

    A row without a metric (ours not logged, or not published) has a blank cell, never a zero.
    Below the table: where each published row was read."""
    if not ds.paper:
        return ""
    columns = paper_columns(ds)
    rows = [
        [m.label, f"this benchmark ({m.seeds} seeds)"]
        + [fmt_percent_points(m.percent.get(k, math.nan)) for k in columns]
        for m in ds.methods
    ]
    rows += [
        [p.method, p.source_label]
        + [fmt_percent_points(p.values.get(k, math.nan)) for k in columns]
        for p in ds.paper
    ]
    read_in: dict[str, list[str]] = {}
    for p in ds.paper:
        read_in.setdefault(p.read_in, []).append(f"{p.method} ({p.source})")
    where = "\n".join(f"- {', '.join(rows_)}: {place}." for place, rows_ in read_in.items())
    return (
        f"Side by side with the paper on {ds.dataset} (percent; our values are means over seeds; "
        "'unverified' numbers were not read in the paper itself, see docs/protocol.md):\n\n"
        + markdown_table(["method", "source", *columns], rows)
        + "\n\nWhere the published rows were read:\n\n"
        + where
    )


SIGNIFICANCE_HEADER = [
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
]


def significance_table(tests: Sequence[SignificanceFinding]) -> str:
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
    return markdown_table(SIGNIFICANCE_HEADER, rows)


def _dataset_body(prep: Prepared, ds: DatasetRetrieval) -> list[str]:
    rows = [
        [m.label, str(m.seeds)] + [ci_cell(m.values[k]) for k in ds.metrics] for m in ds.methods
    ]
    body = [f"### {ds.dataset}\n\n" + markdown_table(["method", "seeds", *ds.metrics], rows)]
    paper = paper_table(ds)
    if paper:
        body.append(paper)
    if not ds.references:
        body.append(
            f"No static-assignment proxy method ran with its registered settings on {ds.dataset}, "
            f"so no significance test; run `{hint(prep, SUGGESTED_PROXY, ds.dataset)}`."
        )
        return body
    if not ds.baselines:
        body.append(
            f"No pair-based baseline ran on {ds.dataset}, so Proxy-NCA is not tested against "
            f"one; run e.g. `{both_families_hint(prep, ds.dataset)}`."
        )
    if ds.tests:
        body.append(significance_table(ds.tests))
    return body


def section(prep: Prepared, found: list[DatasetRetrieval]) -> Section:
    """The RQ4 part of report.md: a table per dataset, the paper's numbers, tests, answers."""
    out = Section("rq4", "RQ4: zero-shot retrieval and clustering", body=[INTRO])
    if not found:
        out.body.append("**Cannot be answered from these runs:** no run logged test metrics.")
        return out
    answers = []
    for ds in found:
        out.body.extend(_dataset_body(prep, ds))
        answers.extend(metric_answers(ds.tests))
    out.findings.extend(answers)
    out.body.extend(answer_lines(answers, lambda f: f.reference, prep.headline_labels))
    return out
