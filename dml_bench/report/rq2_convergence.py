"""RQ2: how fast does each method converge? (PAPER.md, RQ2; paper Fig. 1)

The paper: Proxy-NCA reaches its Recall@1 about 3x faster than the triplet-based baselines.
:func:`findings` measures, per method and dataset, the steps and wall-clock seconds each run
needs to first reach a fraction of its own best Recall@1, and the speed-up of every proxy method
over every pair method (family from the runs' records); :func:`section` renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from dml_bench.report import plots
from dml_bench.report.paper_numbers import SPEEDUP_CLAIM, SPEEDUP_SHORT
from dml_bench.report.runs import FRACTION, NONNEGATIVE, Prepared, has
from dml_bench.report.section import Finding, Section, answer_lines
from dml_bench.report.stats import Interval, Ratio, first_reaching, mean_ci, ratio_of_means_ci
from dml_bench.report.text import (
    SUGGESTED_DATASET,
    both_families_command,
    ci_cell,
    fmt_pct,
    fmt_ratio,
    fmt_seconds,
    fmt_steps,
    fmt_value,
    interval_text,
    markdown_table,
    ratio_cell,
    ratio_text,
)


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
            f"on this dataset there is no speed-up to compare with {SPEEDUP_SHORT}."
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
            f"wall-clock seconds ({ratio_text(self.seconds)}); the paper reports "
            f"{SPEEDUP_CLAIM.text} ({SPEEDUP_CLAIM.where})."
        )


@dataclass(frozen=True)
class DatasetConvergence:
    """RQ2 on one dataset: every method's time to target, and the proxy/pair speed-ups."""

    dataset: str
    methods: list[ConvergenceFinding]
    speedups: list[SpeedupFinding]

    @property
    def comparable(self) -> bool:
        """Both families ran here, so there is a speed-up to compare with the paper's."""
        families = {f.family for f in self.methods}
        return {"proxy", "pair"} <= families

    @property
    def answers(self) -> Sequence[Finding]:
        """What the prose says: the speed-ups, or each method's own time without them."""
        return self.speedups if self.comparable else self.methods


def convergence_finding(
    curves: pd.DataFrame, label: str, dataset: str, family: str, fraction: float
) -> ConvergenceFinding:
    steps, seconds, best = {}, {}, []
    for _, curve in curves.groupby("run_id"):
        seed = int(curve["seed"].iloc[0])
        recall = curve["recall@1"].to_numpy()
        steps[seed] = first_reaching(curve["step"].to_numpy(), recall, fraction)
        seconds[seed] = first_reaching(curve["elapsed_s"].to_numpy(), recall, fraction)
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


def speedup(proxy: ConvergenceFinding, pair: ConvergenceFinding) -> SpeedupFinding:
    return SpeedupFinding(
        proxy=proxy.label,
        pair=pair.label,
        dataset=proxy.dataset,
        target_fraction=proxy.target_fraction,
        steps=ratio_of_means_ci(
            list(pair.steps_per_seed.values()), list(proxy.steps_per_seed.values())
        ),
        seconds=ratio_of_means_ci(
            list(pair.seconds_per_seed.values()), list(proxy.seconds_per_seed.values())
        ),
    )


def recall_curves(prep: Prepared, dataset: str) -> pd.DataFrame | None:
    curves = prep.curves[prep.curves["group"] == dataset]
    return curves if has(curves, "recall@1") else None


def findings(prep: Prepared, target_fraction: float) -> list[DatasetConvergence]:
    """One :class:`DatasetConvergence` per dataset whose runs logged Recall@1."""
    out = []
    for dataset in prep.datasets:
        curves = recall_curves(prep, dataset)
        if curves is None:
            continue
        methods = [
            convergence_finding(
                group, str(label), dataset, str(group["family"].iloc[0]), target_fraction
            )
            for label, group in curves.groupby("label", sort=False)
        ]
        speedups = [
            speedup(proxy, pair)
            for proxy in methods
            if proxy.family == "proxy"
            for pair in methods
            if pair.family == "pair"
        ]
        out.append(DatasetConvergence(dataset, methods, speedups))
    return out


def intro(target_fraction: float) -> str:
    return (
        f"Recall@1 on the test classes against training steps and against training wall-clock "
        f"seconds (evaluation time excluded); lines are means over seeds with a 95% t-interval "
        f"band (no band for a method with one seed). Time to target: the first evaluated step "
        f"(or second) at which a run reaches {fmt_pct(target_fraction)} of its own best "
        f"Recall@1, so it is resolved only to the evaluation interval. Speed-up = mean time of "
        f"the pair method / mean time of the proxy method, with a 95% percentile bootstrap "
        f"interval resampling each method's seeds independently (10,000 resamples, generator "
        f"seed 0)."
    )


def _figures(out: Section, curves: pd.DataFrame, dataset: str) -> None:
    for x, xlabel, name, what in (
        ("step", "training step", "step", "step"),
        ("elapsed_s", "training time (s)", "time", "training time"),
    ):
        out.figures[f"rq2_recall_vs_{name}_{dataset}"] = plots.curve_figure(
            curves,
            y="recall@1",
            x=x,
            xlabel=xlabel,
            ylabel="Recall@1",
            title=f"RQ2: Recall@1 vs {what} on {dataset}",
            bounds=FRACTION,
        )


def _method_row(f: ConvergenceFinding) -> list[str]:
    return [
        f.label,
        f.dataset,
        f.family,
        str(f.best.n),
        ci_cell(f.best),
        ci_cell(f.steps, fmt_steps),
        ci_cell(f.seconds, fmt_seconds),
    ]


def _speedup_row(s: SpeedupFinding) -> list[str]:
    seeds = f"{s.steps.n_denominator} vs {s.steps.n_numerator}"
    return [s.proxy, s.pair, s.dataset, seeds, ratio_cell(s.steps), ratio_cell(s.seconds)]


SPEEDUP_HEADER = [
    "proxy method",
    "pair method",
    "dataset",
    "seeds (proxy vs pair)",
    "speed-up (steps)",
    "speed-up (seconds)",
]


def section(prep: Prepared, found: list[DatasetConvergence], target_fraction: float) -> Section:
    """The RQ2 part of report.md: curves, a time-to-target and a speed-up table, the answers."""
    out = Section("rq2", "RQ2: how fast does each method converge?", body=[intro(target_fraction)])
    for ds in found:
        curves = recall_curves(prep, ds.dataset)
        if curves is not None:
            _figures(out, curves, ds.dataset)
        out.findings.extend(ds.answers)
        if not ds.comparable:
            out.body.append(
                f"**No speed-up on {ds.dataset}:** it needs both a proxy method and a pair method "
                f"there; run `{both_families_command(ds.dataset)}`."
            )
    rows = [_method_row(f) for ds in found for f in ds.methods]
    if not rows:
        out.body.append(
            "**Cannot be answered from these runs:** no run logged `recall@1`; run "
            f"`{both_families_command(SUGGESTED_DATASET)}`."
        )
        return out
    target = fmt_pct(target_fraction)
    header = ["method", "dataset", "family", "seeds", "best Recall@1"]
    out.body.append(markdown_table([*header, f"steps to {target}", f"seconds to {target}"], rows))
    speed_rows = [_speedup_row(s) for ds in found for s in ds.speedups]
    if speed_rows:
        out.body.append(markdown_table(SPEEDUP_HEADER, speed_rows))
    out.body.extend(
        answer_lines(
            out.findings,
            lambda f: str(getattr(f, "proxy", getattr(f, "label", ""))),
            prep.headline_labels,
        )
    )
    return out
