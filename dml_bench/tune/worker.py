"""Workers: processes that take trials from a study group's storage until every method has N.

:func:`run_trial` (one trial of one method) and :func:`run_worker` (trials until the budget is
spent) are plain module-level functions of picklable arguments, so any executor can run them:
in this process, in local worker processes, or elsewhere.

Budget, exactly: a trial holds a place when it is finished (complete or pruned), running or queued.
A worker starts a trial of a method only while fewer than N places are held; if two workers start
one at the same moment, the trial with the higher number sees N places ahead of it and gives its
place back at once (recorded as a failed ``surplus`` trial, never trained). A worker killed with
``kill -9`` stops beating; after the grace period another worker fails its trial and queues it
again with the same parameters, so the study still ends with exactly N finished trials.

The first trial of a study is usually its defaults trial (queued by the command that created the
study, :mod:`dml_bench.tune.defaults`): a worker takes queued trials before sampling new ones
(Optuna's ``ask``), and its suggestions return the queued values.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dml_bench.errors import ConfigError, RunFailedError, UserError
from dml_bench.methods.space import SearchParam
from dml_bench.train.config import RunConfig
from dml_bench.tune.adapter import train_fold, trial_config
from dml_bench.tune.defaults import requeue_if_defaults
from dml_bench.tune.folds import FoldSource, fold_data, load_fold_source
from dml_bench.tune.plan import StudyPlan
from dml_bench.tune.storage import TUNING_FOLDER
from dml_bench.tune.study import Counts, count_trials, fail_stale, load_study

logger = logging.getLogger(__name__)

POLL_S = 0.5


class SurplusTrial(Exception):
    """A trial started by a concurrent worker after the budget was already held."""


class TooManyFailuresError(UserError):
    """More trials failed than the budget holds: the search space or the set-up is broken."""


@dataclass
class WorkerState:
    """What one worker process keeps between trials: the loaded data of each method."""

    plan: StudyPlan
    worker: str = ""
    sources: dict[str, FoldSource] = field(default_factory=dict)

    def source(self, config: RunConfig) -> FoldSource:
        if config.method not in self.sources:
            self.sources[config.method] = load_fold_source(config, self.plan.budget.folds)
        return self.sources[config.method]


def worker_name(index: int) -> str:
    """Host, process id and local index: unique across machines (recorded with each trial)."""
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


def suggest(trial: Any, param: SearchParam) -> Any:
    if param.kind == "categorical":
        return trial.suggest_categorical(param.name, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(
            param.name, int(param.low or 0), int(param.high or 0), log=param.log
        )
    return trial.suggest_float(
        param.name, float(param.low or 0), float(param.high or 0), log=param.log
    )


def trial_folder(plan: StudyPlan, method: str, number: int) -> Path:
    return plan.results_dir / TUNING_FOLDER / plan.group / method / f"trial-{number:04d}"


def counts(plan: StudyPlan, method: str) -> Counts:
    study = load_study(plan, method)
    fail_stale(study)
    return count_trials(study.get_trials(deepcopy=False))


def run_trial(plan: StudyPlan, method: str, state: WorkerState | None = None) -> None:
    """Run one trial of ``method`` (unless the budget is already held): sample its parameters,
    train its fold(s), report every validation evaluation to the pruner, record the score."""

    state = state or WorkerState(plan, worker_name(0))
    study = load_study(plan, method)
    study.optimize(
        lambda trial: _objective(trial, plan, method, state),
        n_trials=1,
        catch=(SurplusTrial, RunFailedError),
    )


def _objective(trial: Any, plan: StudyPlan, method: str, state: WorkerState) -> float:
    import optuna
    from optuna.trial import TrialState

    held = trial.study.get_trials(
        deepcopy=False,
        states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING),
    )
    if sum(t.number < trial.number for t in held) >= plan.budget.trials:
        trial.set_user_attr("surplus", True)
        raise SurplusTrial(f"trial {trial.number}: the budget of {plan.budget.trials} is held")
    trial.set_user_attr("worker", state.worker)
    params = {p.name: suggest(trial, p) for p in plan.search_space(method)}
    try:
        config = trial_config(plan.base_config(method), params)
    except ConfigError as exc:  # e.g. two sampled margins in the wrong order: a failed trial
        trial.set_user_attr("reason", str(exc))
        raise RunFailedError(f"invalid parameters {params}: {exc}") from None
    budget = plan.budget
    folder = trial_folder(plan, method, trial.number)
    scores = []
    try:
        source = state.source(config)  # the first trial of a method loads its data: Ctrl-C-able
        for fold in range(budget.folds if budget.cv else 1):

            def on_evaluation(row: Any, fold: int = fold) -> None:
                step = int(row["step"])
                value = row.get(budget.metric)
                if step == 0 or value is None:
                    return
                trial.report(float(value), fold * budget.steps + step)
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"validation {budget.metric} {value:.4f} at step {step}"
                    )

            data = fold_data(source, budget.folds, fold, budget.seed)
            score = train_fold(config, data, folder / f"fold-{fold}", on_evaluation, budget.metric)
            scores.append(score)
            trial.set_user_attr(f"fold{fold}_{budget.metric}", score)
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        requeue_if_defaults(trial)
        raise
    except RunFailedError as exc:
        trial.set_user_attr("reason", str(exc))
        logger.warning("%s trial %d failed: %s", method, trial.number, exc)
        raise
    return statistics.fmean(scores)


def run_worker(
    plan: StudyPlan, index: int = 0, on_trial: Callable[[], object] | None = None
) -> None:
    """Take trials until every method of the plan has ``budget.trials`` finished trials.

    The method with the fewest held places goes next, so an interrupted study stays balanced.
    While every remaining place is held by running trials, wait (and fail stale ones)."""
    state = WorkerState(plan, worker_name(index))
    limit = plan.budget.trials
    while True:
        now = {m: counts(plan, m) for m in plan.methods}
        if all(c.finished >= limit for c in now.values()):
            return
        failed = sum(c.failed for c in now.values())
        if failed > max(limit, 5) * len(plan.methods):
            raise TooManyFailuresError(
                f"{failed} trials of study {plan.group!r} failed (diverged or their worker "
                "died), more than its budget. Look at the failure reasons in the trial folders "
                f"under {plan.results_dir / TUNING_FOLDER / plan.group}; narrow the search space "
                "or lower the learning rate range."
            )
        # A queued (WAITING) trial holds a place but needs a worker to run it: a retry of a
        # trial whose worker died is queued, and nobody else would ever pick it up.
        open_methods = [m for m, c in now.items() if c.occupied < limit or c.waiting]
        if not open_methods:
            time.sleep(POLL_S)
            continue
        method = min(open_methods, key=lambda m: (now[m].occupied, plan.methods.index(m)))
        run_trial(plan, method, state)
        if on_trial is not None:
            on_trial()
