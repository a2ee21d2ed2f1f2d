"""The report's Tuning section, and what RQ2 and RQ4 say about how the compared runs were tuned.

Compute, then render: :func:`findings` reads the study records under ``RESULTS/tuning`` (written
by ``dml-bench tune``; see :mod:`dml_bench.tune.record`) into :class:`TuningFinding` objects,
:func:`section` turns them into Markdown and one optimisation-history figure per study.
:func:`budget_note` reads the runs' own records (their ``tuning`` entry) to say whether the runs a
question compares were tuned with one equal budget, or were not (untuned: defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dml_bench.report.plots import color_for
from dml_bench.report.section import Section
from dml_bench.report.text import markdown_table


@dataclass(frozen=True)
class TuningFinding:
    """One method of one study: its budget, what finished, and the best trial."""

    study: str
    dataset: str
    method: str
    budget: str
    metric: str
    complete: int
    pruned: int
    failed: int
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any] = field(default_factory=dict)
    values: tuple[tuple[int, float], ...] = ()  # (trial number, value) of completed trials
    defaults: DefaultsTrial | None = None  # None: a record made before defaults trials

    def trials_text(self) -> str:
        """Finished trials (complete or pruned: those that fill the budget) and, apart, the
        failed ones, which hold no place in it and are not among the finished."""
        return (
            f"{self.complete + self.pruned} finished ({self.pruned} pruned), {self.failed} failed"
        )

    def sentence(self) -> str:
        done = f"trials: {self.trials_text()}"
        if self.best_value is None:
            return f"`{self.method}` in study `{self.study}`: {done}, none completed yet."
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.best_params.items()))
        return (
            f"`{self.method}` in study `{self.study}` ({self.budget}): {done}; best validation "
            f"{self.metric} {self.best_value:.3f} at trial {self.best_trial} ({params}); "
            f"{self.defaults_words()}."
        )

    def defaults_words(self) -> str:
        """What became of the method's hand-picked defaults, in words (for the sentence)."""
        d = self.defaults
        if d is None:
            return "its defaults were not tried as a trial (a study made before defaults trials)"
        if d.trial is None:
            return f"its defaults were not tried as a trial ({d.reason or 'not queued'})"
        if d.state == "complete" and d.value is not None:
            won = " (the defaults are the best trial)" if d.trial == self.best_trial else ""
            return f"its defaults (trial {d.trial}) scored {d.value:.3f}{won}"
        if d.state == "pruned":
            at = "" if d.last_step is None else f" at step {d.last_step}"
            return f"its defaults trial (trial {d.trial}) was pruned{at}"
        return f"its defaults trial (trial {d.trial}) {_STATE_WORDS.get(str(d.state), d.state)}"

    def gain(self) -> float | None:
        """Best minus the defaults' validation score (what tuning bought), when both exist."""
        d = self.defaults
        if d is None or d.state != "complete" or d.value is None or self.best_value is None:
            return None
        return self.best_value - d.value


@dataclass(frozen=True)
class DefaultsTrial:
    """The study's trial at a method's hand-picked defaults (the record's ``defaults`` entry):
    ``trial`` is ``None`` when they were not tried, and ``reason`` says why."""

    trial: int | None
    state: str | None  # complete, pruned, fail, waiting, running
    value: float | None  # a pruned trial's is its last reported value
    last_step: int | None
    reason: str | None = None  # --no-defaults-trial, or the parameters outside the space


#: An unfinished or failed defaults trial's state, in words.
_STATE_WORDS = {"fail": "failed", "waiting": "is queued", "running": "is running"}


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def findings(results_dir: Path, runs: pd.DataFrame | None = None) -> list[TuningFinding]:
    """The studies under ``results_dir/tuning``, and the packaged studies (a dataset's shipped
    defaults, :mod:`dml_bench.tune.packaged`) that ``runs`` were trained from."""
    from dml_bench.tune.record import read_studies

    records = read_studies(results_dir)
    known = {r["group"] for r in records}
    records += [r for r in packaged_records(runs) if r["group"] not in known]
    out = []
    for record in records:
        budget = record.get("budget", {})
        for method, entry in record.get("methods", {}).items():
            counts, best = entry.get("counts", {}), entry.get("best") or {}
            values = tuple(
                (int(t["number"]), float(t["value"]))
                for t in entry.get("trials", [])
                if t.get("state") == "complete" and t.get("value") is not None
            )
            out.append(
                TuningFinding(
                    study=str(record["group"]),
                    dataset=str(record.get("dataset")),
                    method=str(method),
                    budget=str(record.get("budget_text", "")),
                    metric=str(budget.get("metric", "map@r")),
                    complete=int(counts.get("complete", 0)),
                    pruned=int(counts.get("pruned", 0)),
                    failed=int(counts.get("failed", 0)),
                    best_trial=best.get("trial"),
                    best_value=best.get("value"),
                    best_params=dict(best.get("params", {})),
                    values=values,
                    defaults=defaults_trial(entry.get("defaults")),
                )
            )
    return out


def defaults_trial(entry: Any) -> DefaultsTrial | None:
    """The record's ``defaults`` entry as a :class:`DefaultsTrial` (``None`` when absent)."""
    if not isinstance(entry, dict):
        return None
    reason = entry.get("reason")
    outside = entry.get("outside_space") or {}
    if outside:
        params = entry.get("params", {})
        named = "; ".join(f"{k}={_fmt(params.get(k))} {why}" for k, why in outside.items())
        reason = f"{reason}: {named}" if reason else named
    return DefaultsTrial(
        trial=entry.get("trial"),
        state=entry.get("state"),
        value=entry.get("value"),
        last_step=entry.get("last_step"),
        reason=reason,
    )


def packaged_records(runs: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The shipped study records of the datasets whose runs say ``storage: packaged:...``."""
    if runs is None or runs.empty or "tuning_storage" not in runs:
        return []
    from dml_bench.tune.packaged import PACKAGED_PREFIX, packaged_study

    storage = runs["tuning_storage"].fillna("").astype(str)
    datasets = sorted(set(runs.loc[storage.str.startswith(PACKAGED_PREFIX), "dataset"]))
    found = [packaged_study(str(d)) for d in datasets]
    return [record for _, record in filter(None, found)]


def section(found: Sequence[TuningFinding], wall_s: dict[str, float] | None = None) -> Section:
    result = Section("tuning", "Tuning")
    result.body.append(
        "Hyperparameters chosen by `dml-bench tune`: every method of a study gets the same "
        "budget (trials, steps per trial, folds) on validation classes carved out of the train "
        "classes (the test classes are never embedded), as the Reality Check prescribes "
        "(Musgrave et al., ECCV 2020). Sampler: seeded TPE; pruner: median of earlier trials at "
        "the same step. Runs trained with `dml-bench run --tuned` use the best trial's values; "
        "so do plain `dml-bench run`s on a dataset that ships a study (its defaults from "
        "evidence; `--untuned` for the hand-picked ones)."
    )
    result.body.append(
        "Each method's first trial trains its hand-picked defaults inside the same budget (the "
        "*defaults validation* column says when a study did not: `--no-defaults-trial`, a "
        "default outside the search space, or a study made before defaults trials), so the best "
        "trial can only match or beat them on validation; *gain* is what the search bought."
    )
    rows = [
        [
            f.study,
            f.dataset,
            f.method,
            f.budget,
            f.trials_text(),
            defaults_cell(f.defaults),
            "-" if f.best_value is None else f"{f.best_value:.3f} (trial {f.best_trial})",
            gain_cell(f),
            ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(f.best_params.items())) or "-",
        ]
        for f in found
    ]
    headers = ["study", "dataset", "method", "budget", "trials", "defaults validation"]
    headers += ["best validation", "gain", "parameters"]
    result.body.append(markdown_table(headers, rows))
    for study in dict.fromkeys(f.study for f in found):
        result.figures[f"tuning_history_{study}"] = history_figure(
            [f for f in found if f.study == study]
        )
    result.findings.extend(found)
    return result


def defaults_cell(d: DefaultsTrial | None) -> str:
    """The table's *defaults validation* cell: the score, or what became of the trial."""
    if d is None:
        return "not recorded (study made before defaults trials)"
    if d.trial is None:
        return f"not tried ({d.reason or 'not queued'})"
    if d.state == "complete" and d.value is not None:
        return f"{d.value:.3f} (trial {d.trial})"
    if d.state == "pruned":
        last = "" if d.value is None else f", last {d.value:.3f}"
        at = "" if d.last_step is None else f" at step {d.last_step}"
        return f"pruned{at} (trial {d.trial}{last})"
    return f"{_STATE_WORDS.get(str(d.state), d.state)} (trial {d.trial})"


def gain_cell(f: TuningFinding) -> str:
    gain = f.gain()
    if gain is None:
        return "-"
    if f.defaults is not None and f.defaults.trial == f.best_trial:
        return "0 (the defaults won)"
    return f"{gain:+.3f}"


def history_figure(found: Sequence[TuningFinding]) -> Figure:
    """Validation score of each completed trial (dots), the best so far (line) and the defaults
    trial (an open diamond), per method."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, f in enumerate(found):
        if not f.values:
            continue
        numbers = np.array([n for n, _ in f.values])
        values = np.array([v for _, v in f.values])
        color = color_for(i)
        ax.scatter(numbers, values, s=14, color=color, alpha=0.6)
        ax.step(numbers, np.maximum.accumulate(values), where="post", color=color, label=f.method)
        d = f.defaults
        if d is not None and d.state == "complete" and d.trial is not None and d.value is not None:
            ax.scatter([d.trial], [d.value], s=60, marker="D", facecolors="none", color=color)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {found[0].metric if found else ''}")
    ax.set_title(f"Tuning: study {found[0].study if found else ''}")
    if any(f.values for f in found):
        ax.legend(fontsize=8)
    return fig


def budget_note(runs: pd.DataFrame) -> str:
    """Whether the runs a question compares were tuned with one equal budget; plain words."""
    if runs.empty:
        return ""
    study = runs.get("tuning_study", pd.Series("", index=runs.index)).fillna("").astype(str)
    budget = runs.get("tuning_budget", pd.Series("", index=runs.index)).fillna("").astype(str)
    labels = runs["label"] if "label" in runs else runs["variant"]
    tuned = sorted(set(labels[study != ""]))
    untuned = sorted(set(labels[study == ""]))
    if not tuned:
        return (
            "**Tuning.** None of the compared runs was tuned (untuned: defaults), so a ranking "
            "may reflect the defaults rather than the losses. `dml-bench tune` then "
            "`dml-bench run --tuned` compares them at an equal tuning budget."
        )
    pairs = sorted(set(zip(study[study != ""], budget[study != ""], strict=True)))
    if not untuned and len(pairs) == 1:
        return (
            f"**Tuning.** All compared runs were tuned with an equal budget: study "
            f"`{pairs[0][0]}`, {pairs[0][1]} per method, on validation classes."
        )
    parts = [f"tuned: {', '.join(tuned)} ({'; '.join(f'`{s}`, {b}' for s, b in pairs)})"]
    if untuned:
        parts.append(f"untuned: defaults: {', '.join(untuned)}")
    return (
        "**Tuning.** The compared runs were not tuned with equal budgets: " + "; ".join(parts) + "."
    )
