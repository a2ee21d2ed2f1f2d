"""RQ2: how fast does each method converge? (docs/protocol.md, RQ2; paper Fig. 1)

The paper: Proxy-NCA reaches its Recall@1 about 3x faster than the triplet-based baselines.
:func:`findings` measures, per method and dataset, the steps and wall-clock seconds each run
needs to first reach a fraction of its own best Recall@1, and the speed-up of every proxy method
over every pair method (family from the runs' records); :func:`section` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dml_bench.report import plots
from dml_bench.report import seconds as timing
from dml_bench.report.comparability import both_families_hint, first_group
from dml_bench.report.paper_numbers import SPEEDUP_CLAIM, SPEEDUP_SHORT
from dml_bench.report.runs import FRACTION, NONNEGATIVE, Prepared, has, nanmean
from dml_bench.report.seconds import LOAD_GAP, LOADS_DIFFER
from dml_bench.report.section import Finding, Section, answer_lines
from dml_bench.report.stats import (
    Interval,
    Ratio,
    first_reaching,
    mean_ci,
    ratio_of_means_ci,
    reaching_bounds,
)
from dml_bench.report.text import (
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

#: A method "learned" when its best Recall@1 closed at least this share of the gap between its
#: untrained network (the step-0 evaluation) and perfect recall. Below it, the time to reach a
#: fraction of its own best measures noise around the untrained level (a best of 0.27 from 0.21
#: closes 7.6%, and 90% of 0.27 is reached almost at once), so the method is not ranked. Trained
#: methods on the embedded data close 40% or more; 10% leaves a wide margin on both sides.
LEARNED_GAIN = 0.10


def not_learned_text(f: ConvergenceFinding) -> str:
    if f.untrained.mean >= 1.0:
        return (
            f"On {f.dataset}, {f.label} did not learn: its untrained network (step 0) already "
            f"had Recall@1 {fmt_value(f.untrained.mean)}, so there was nothing to improve; its "
            "time to target is not compared."
        )
    return (
        f"On {f.dataset}, {f.label} did not learn: its best Recall@1 "
        f"({fmt_value(f.best.mean)}) against {fmt_value(f.untrained.mean)} untrained (step 0) "
        f"closed {fmt_pct(f.gain)} of the gap to 1, below the {fmt_pct(f.gain_needed)} a method "
        "needs to be ranked; its time to target is not compared."
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
    untrained: Interval = Interval(math.nan, math.nan, math.nan, 0)
    steps_bounds: tuple[float, float] = (math.nan, math.nan)
    seconds_bounds: tuple[float, float] = (math.nan, math.nan)
    load: float = math.nan
    resolution: float = math.nan
    #: the share of the gap between its untrained Recall@1 (step 0) and 1 that its best closed
    #: (NaN without a step-0 evaluation), and the share needed (:data:`LEARNED_GAIN`)
    gain: float = math.nan
    gain_needed: float = LEARNED_GAIN
    #: seed -> the machine's mean load per core during that seed's run (``load1``; NaN when
    #: the run did not record it); ``load`` is their mean
    loads_per_seed: dict[int, float] = field(default_factory=dict)

    @property
    def learned(self) -> bool:
        """See :data:`LEARNED_GAIN`; a method without a step-0 row is taken to have learned."""
        return not self.gain < self.gain_needed

    @property
    def load_range(self) -> tuple[float, float]:
        """The lowest and the highest load per core among its seeds' runs (NaN if none)."""
        return timing.value_range(self.loads_per_seed)

    @property
    def loads_differ(self) -> bool:
        """Its seeds ran under loads per core more than :data:`timing.LOAD_GAP` apart: no mean
        or interval of its seconds (see :mod:`dml_bench.report.seconds`)."""
        return timing.loads_differ(self)

    @property
    def seconds_range(self) -> tuple[float, float]:
        """The fewest and the most seconds to target among its seeds (NaN if none)."""
        return timing.value_range(self.seconds_per_seed)

    def seconds_text(self) -> str:
        """Its seconds to target in prose: mean and interval, or, when its seeds' loads differ,
        the range over seeds and why there is no mean."""
        if self.loads_differ:
            return timing.range_text(self)
        return f"{fmt_seconds(self.seconds.mean)} ({interval_text(self.seconds, fmt_seconds)})"

    def sentence(self) -> str:
        if not self.learned:
            return not_learned_text(self)
        return (
            f"On {self.dataset}, {self.label} reached {fmt_pct(self.target_fraction)} of its best "
            f"Recall@1 ({fmt_value(self.best.mean)}) after {fmt_steps(self.steps.mean)} steps "
            f"({interval_text(self.steps, fmt_steps)}) and {self.seconds_text()}; without a "
            f"method of the other family on this dataset there is no speed-up to compare with "
            f"{SPEEDUP_SHORT}."
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
    steps_range: tuple[float, float] = (math.nan, math.nan)
    resolution: float = math.nan
    seconds_refused: str = ""
    #: the speed-ups in seconds that the evaluation grid allows (:func:`grid_range`)
    seconds_range: tuple[float, float] = (math.nan, math.nan)

    @property
    def seconds_resolved(self) -> bool:
        """Whether the grid tells which method was faster in seconds (as :attr:`resolved`)."""
        lo, hi = self.seconds_range
        return not lo <= 1.0 <= hi

    @property
    def resolved(self) -> bool:
        """Whether the evaluation grid tells which method was faster: the range of speed-ups
        that the grid allows (:func:`grid_range`) lies on one side of 1."""
        lo, hi = self.steps_range
        return not lo <= 1.0 <= hi

    def sentence(self) -> str:
        lo, hi = self.steps_range
        grid = (
            f"evaluations every {fmt_steps(self.resolution)} steps allow any speed-up from "
            f"{fmt_ratio(lo)} to {fmt_ratio(hi) if math.isfinite(hi) else 'unbounded'}"
        )
        if not self.resolved:
            return (
                f"On {self.dataset}, the evaluation schedule cannot tell whether {self.proxy} or "
                f"{self.pair} reached {fmt_pct(self.target_fraction)} of its best Recall@1 "
                f"first: {grid}, so no speed-up is claimed (the paper reports "
                f"{SPEEDUP_CLAIM.text}); evaluate more often (--eval-every) to resolve it."
            )
        lo_s, hi_s = self.seconds_range
        if self.seconds_refused:
            seconds = f"in wall-clock seconds not compared ({self.seconds_refused})"
        elif not self.seconds_resolved:
            seconds = (
                "in wall-clock seconds not resolved (the evaluations allow any speed-up from "
                f"{fmt_ratio(lo_s)} to {fmt_ratio(hi_s) if math.isfinite(hi_s) else 'unbounded'})"
            )
        else:
            seconds = (
                f"{fmt_ratio(self.seconds.value)} in wall-clock seconds "
                f"({ratio_text(self.seconds)})"
            )
        return (
            f"On {self.dataset}, {self.proxy} reached {fmt_pct(self.target_fraction)} of its best "
            f"Recall@1 with a speed-up of {fmt_ratio(self.steps.value)} in steps over "
            f"{self.pair} ({ratio_text(self.steps)}; {grid}) and {seconds}; the paper reports "
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
        """What the prose says: the speed-ups (or each method's own time without them), and
        every method that did not learn."""
        if not self.comparable:
            return self.methods
        return [*self.speedups, *(m for m in self.methods if not m.learned)]


def convergence_finding(
    curves: pd.DataFrame, label: str, dataset: str, family: str, fraction: float
) -> ConvergenceFinding:
    steps, seconds, best, untrained = {}, {}, [], []
    step_bounds, second_bounds, loads = [], [], {}
    for _, curve in curves.groupby("run_id"):
        seed = int(curve["seed"].iloc[0])
        recall = curve["recall@1"].to_numpy()
        steps[seed] = first_reaching(curve["step"].to_numpy(), recall, fraction)
        seconds[seed] = first_reaching(curve["elapsed_s"].to_numpy(), recall, fraction)
        step_bounds.append(reaching_bounds(curve["step"].to_numpy(), recall, fraction))
        second_bounds.append(reaching_bounds(curve["elapsed_s"].to_numpy(), recall, fraction))
        best.append(float(curve["recall@1"].max()))
        untrained.extend(curve.loc[curve["step"] == 0, "recall@1"].astype(float).tolist())
        if "load1" in curve.columns:
            loads[seed] = nanmean(curve["load1"].astype(float).tolist())
    r0, top = mean_ci(untrained).mean, float(np.mean(best))
    return ConvergenceFinding(
        gain=learned_gain(r0, top),
        label=label,
        dataset=dataset,
        family=family,
        target_fraction=fraction,
        best=mean_ci(best, bounds=FRACTION),
        steps=mean_ci(list(steps.values()), bounds=NONNEGATIVE),
        seconds=mean_ci(list(seconds.values()), bounds=NONNEGATIVE),
        steps_per_seed=steps,
        seconds_per_seed=seconds,
        untrained=mean_ci(untrained, bounds=FRACTION),
        steps_bounds=_mean_bounds(step_bounds),
        seconds_bounds=_mean_bounds(second_bounds),
        load=nanmean(list(loads.values())),
        loads_per_seed=loads,
        resolution=max(
            (
                float(np.diff(np.unique(c["step"])).max())
                for _, c in curves.groupby("run_id")
                if c["step"].nunique() > 1
            ),
            default=math.nan,
        ),
    )


def learned_gain(untrained: float, best: float) -> float:
    """The share of the gap between the untrained Recall@1 and 1 that the best closed (see
    :data:`LEARNED_GAIN`): NaN without a step-0 evaluation; 0 for a network perfect at step 0,
    which has nothing to close and so learned nothing (a gain of NaN there would count it as
    having learned)."""
    if not math.isfinite(untrained):
        return math.nan
    if untrained >= 1.0:
        return 0.0
    return (best - untrained) / (1.0 - untrained)


def _mean_bounds(bounds: list[tuple[float, float]]) -> tuple[float, float]:
    return nanmean([b[0] for b in bounds]), nanmean([b[1] for b in bounds])


def grid_range(pair: tuple[float, float], proxy: tuple[float, float]) -> tuple[float, float]:
    """The speed-ups (pair time / proxy time) the evaluation grid allows: each mean time lies
    between the mean of its runs' last evaluation before the target and the first at it."""
    low = pair[0] / proxy[1] if proxy[1] > 0 else math.nan
    high = pair[1] / proxy[0] if proxy[0] > 0 else math.inf
    return low, high


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
        steps_range=grid_range(pair.steps_bounds, proxy.steps_bounds),
        resolution=max(proxy.resolution, pair.resolution),
        seconds_refused=timing.refusal(proxy, pair),
        seconds_range=grid_range(pair.seconds_bounds, proxy.seconds_bounds),
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
        learned = [m for m in methods if m.learned]
        speedups = [
            speedup(proxy, pair)
            for proxy in learned
            if proxy.family == "proxy"
            for pair in learned
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
        f"seed 0). Since a time is known only between two evaluations, each speed-up also gives "
        f"the range the evaluation grid allows, and none is claimed when that range includes "
        f"1x. A method whose best Recall@1 closed less than {fmt_pct(LEARNED_GAIN)} of the gap "
        f"between its untrained network (step 0) and 1 did not learn and is not ranked. Seconds "
        f"depend on the machine's load: runs record it, and seconds are not compared when the "
        f"two methods' runs saw loads per core more than {fmt_value(LOAD_GAP)} apart. When the "
        f"seeds of one method ran under loads that far apart, its seconds get no mean or "
        f"interval: the table gives the range over its seeds, marked {LOADS_DIFFER}, the note "
        f"under it each seed's seconds and load, and its seconds are compared with no other "
        f"method's; the time figure marks its line."
    )


def _figures(out: Section, curves: pd.DataFrame, ds: DatasetConvergence) -> None:
    dataset = ds.dataset
    mixed = {m.label: "loads differ" for m in ds.methods if m.loads_differ}
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
            notes=mixed if x == "elapsed_s" else None,
        )


def _method_row(f: ConvergenceFinding) -> list[str]:
    head = [f.label, f.dataset, f.family, str(f.best.n), ci_cell(f.untrained), ci_cell(f.best)]
    if not f.learned:
        return [*head, "did not learn", "not ranked"]
    return [*head, ci_cell(f.steps, fmt_steps), seconds_cell(f)]


def seconds_cell(f: ConvergenceFinding) -> str:
    """Mean and interval of its seconds to target; the range over its seeds, marked, when they
    ran under loads that differ (see :attr:`ConvergenceFinding.loads_differ`)."""
    return timing.range_cell(f) if f.loads_differ else ci_cell(f.seconds, fmt_seconds)


def _speedup_row(s: SpeedupFinding) -> list[str]:
    seeds = f"{s.steps.n_denominator} vs {s.steps.n_numerator}"
    lo, hi = s.steps_range
    grid = f"{fmt_ratio(lo)} to {fmt_ratio(hi) if math.isfinite(hi) else 'unbounded'}"
    steps = ratio_cell(s.steps) if s.resolved else "not resolved"
    if s.seconds_refused or not s.resolved:
        seconds = "not compared"
    elif not s.seconds_resolved:
        seconds = "not resolved"
    else:
        seconds = ratio_cell(s.seconds)
    every = fmt_steps(s.resolution)
    return [s.proxy, s.pair, s.dataset, seeds, every, grid, steps, seconds]


SPEEDUP_HEADER = [
    "proxy method",
    "pair method",
    "dataset",
    "seeds (proxy vs pair)",
    "evaluated every (steps)",
    "grid allows (steps)",
    "speed-up (steps)",
    "speed-up (seconds)",
]


def section(prep: Prepared, found: list[DatasetConvergence], target_fraction: float) -> Section:
    """The RQ2 part of report.md: curves, a time-to-target and a speed-up table, the answers."""
    out = Section("rq2", "RQ2: how fast does each method converge?", body=[intro(target_fraction)])
    for ds in found:
        curves = recall_curves(prep, ds.dataset)
        if curves is not None:
            _figures(out, curves, ds)
        out.findings.extend(ds.answers)
        if not ds.comparable:
            out.body.append(
                f"**No speed-up on {ds.dataset}:** it needs both a proxy method and a pair method "
                f"there; run `{both_families_hint(prep, ds.dataset)}`."
            )
    rows = [_method_row(f) for ds in found for f in ds.methods]
    if not rows:
        out.body.append(
            "**Cannot be answered from these runs:** no run logged `recall@1`; run "
            f"`{both_families_hint(prep, first_group(prep))}`."
        )
        return out
    target = fmt_pct(target_fraction)
    header = ["method", "dataset", "family", "seeds", "Recall@1 at step 0", "best Recall@1"]
    out.body.append(markdown_table([*header, f"steps to {target}", f"seconds to {target}"], rows))
    note = timing.loads_note([f for ds in found for f in ds.methods if f.learned])
    if note:
        out.body.append(note)
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
