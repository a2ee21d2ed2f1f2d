"""The Optuna side of a study group: create or join it, sampler, pruner, and its counts.

Sampler: TPE (Optuna's default Bayesian optimiser; Bergstra et al., NeurIPS 2011), seeded (see
:func:`sampler_seed`), with ``constant_liar`` so parallel workers do not propose the same point
while others are running.
Its random start-up is a third of the budget (at least 2, at most Optuna's default 10).

Pruner: Optuna's ``MedianPruner``: a trial whose validation metric at an evaluation is below the
median of earlier trials at the same training step stops there. It needs no schedule to set
(Hyperband / successive halving need minimum and maximum resources and a reduction factor, and pay
off with hundreds of trials; our budgets are tens), and it only compares like with like (same step,
same fold). It starts after 3 finished trials, and never at step 0 (the untrained network scores
the same whatever the parameters). A pruned trial counts towards the budget: every method gets N
trials, each trained to its end or stopped by the same rule.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dml_bench.errors import UserError
from dml_bench.tune.defaults import STUDY_ATTR as DEFAULTS_ATTR
from dml_bench.tune.defaults import enqueue_defaults
from dml_bench.tune.plan import DEFAULTS_META, StudyPlan
from dml_bench.tune.storage import mask_url, open_storage

META_KEY = "dml_bench"
PRUNER_STARTUP_TRIALS = 3
#: How long a command joining a study waits for its creator to set it up (a few writes).
INIT_WAIT_S = 30.0
INIT_POLL_S = 0.2


class StudyConflictError(UserError):
    """A study of that name exists for other methods, another dataset or another budget."""


def storage_of(plan: StudyPlan) -> Any:
    return open_storage(plan.storage, plan.heartbeat_s)


def sampler_seed(seed: int, trials_so_far: int) -> int:
    """The sampler is built afresh for every trial, seeded by the study's seed and the number of
    trials the study holds: one worker replays the same sequence (and a resumed study continues
    it), while concurrent workers, which see different counts, do not propose the same random
    start-up points."""
    return (seed * 1_000_003 + trials_so_far) % 2**31


def make_sampler(plan: StudyPlan, trials_so_far: int) -> Any:
    import optuna

    startup = max(2, min(10, plan.budget.trials // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.samplers.TPESampler(
            seed=sampler_seed(plan.budget.seed, trials_so_far),
            n_startup_trials=startup,
            constant_liar=True,
        )


def make_pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=1)


def load_study(plan: StudyPlan, method: str) -> Any:
    """The method's study, with a sampler seeded for its next trial and the pruner."""
    import optuna

    study = optuna.load_study(
        study_name=plan.study_name(method), storage=storage_of(plan), pruner=make_pruner()
    )
    study.sampler = make_sampler(plan, len(study.get_trials(deepcopy=False)))
    return study


def create_or_join(plan: StudyPlan) -> None:
    """Create the group's studies, or join them if they exist with the same set-up.

    The command that creates a method's study (Optuna's storage lets exactly one of several
    concurrent creators succeed: study names are unique) enqueues the method's defaults trial and
    only then marks the study initialised (:data:`META_KEY`); a command that finds the study
    already there waits for that mark before any of its workers runs a trial, so the defaults
    trial is trial 0 and is enqueued once (:mod:`dml_bench.tune.defaults`). A creator stopped
    between the two (Ctrl-C, a lost connection) deletes the study it made, so the next command
    creates it afresh; only a creator killed outright in those milliseconds leaves a study
    without the mark, which a joiner refuses after :data:`INIT_WAIT_S`."""
    import optuna

    storage = storage_of(plan)
    existing = [s for s in optuna.get_all_study_names(storage) if s.startswith(f"{plan.group}:")]
    wanted = plan.meta()
    for name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        check_same(plan, initialised_meta(study), wanted)
    for method in plan.methods:
        try:
            study = optuna.create_study(
                study_name=plan.study_name(method), storage=storage, direction="maximize"
            )
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=plan.study_name(method), storage=storage)
            check_same(plan, initialised_meta(study), wanted)
            continue
        try:
            entry = enqueue_defaults(study, plan.base_config(method), plan.defaults_trial)
            study.set_user_attr(DEFAULTS_ATTR, entry)
            study.set_user_attr(META_KEY, wanted)  # last: the study is ready to be joined
        except BaseException:  # Ctrl-C or a lost connection: leave no half-made study behind
            optuna.delete_study(study_name=plan.study_name(method), storage=storage)
            raise


def initialised_meta(study: Any, wait_s: float | None = None) -> Any:
    """The study's :data:`META_KEY`, waiting up to ``wait_s`` (default :data:`INIT_WAIT_S`) for a
    concurrent creator to set it; ``None`` if it never comes (not a dml-bench study)."""
    deadline = time.monotonic() + (INIT_WAIT_S if wait_s is None else wait_s)
    while True:
        try:
            meta = study.user_attrs.get(META_KEY)
        except KeyError:  # its creator stopped and deleted it meanwhile
            return None
        if meta is not None or time.monotonic() >= deadline:
            return meta
        time.sleep(INIT_POLL_S)


def check_same(plan: StudyPlan, found: Any, wanted: dict[str, Any]) -> None:
    if found == wanted:
        return
    where = f"in {mask_url(plan.storage)}"
    if not isinstance(found, dict):
        raise StudyConflictError(
            f"A study named {plan.group!r} exists {where} but was not made by dml-bench tune "
            "(or the command creating it stopped before it was set up). Choose another name "
            "with --study NAME."
        )
    for key, what in (("dataset", "dataset"), ("methods", "methods"), ("budget", "budget")):
        if found.get(key) != wanted[key]:
            raise StudyConflictError(
                f"The study {plan.group!r} {where} exists for {what} {_show(found.get(key))}, "
                f"not {_show(wanted[key])}. A study compares its methods at one budget on one "
                f"dataset: choose a new name with --study NAME, or repeat the original command "
                "to continue it."
            )
    if DEFAULTS_META not in found:  # made before defaults trials: join it as it is
        found = {**found, DEFAULTS_META: wanted.get(DEFAULTS_META)}
        if found == wanted:
            return
    if found.get(DEFAULTS_META) != wanted.get(DEFAULTS_META):
        how = (
            "with a defaults trial; repeat the original command without --no-defaults-trial"
            if found.get(DEFAULTS_META)
            else "with --no-defaults-trial; repeat the original command with --no-defaults-trial"
        )
        raise StudyConflictError(
            f"The study {plan.group!r} {where} was started {how} to continue it, or choose a new "
            "name with --study NAME."
        )
    raise StudyConflictError(
        f"The study {plan.group!r} {where} exists with other run options or dataset parameters "
        "(batch size, embedding size, ...). Choose a new name with --study NAME, or repeat the "
        "original command to continue it."
    )


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Counts:
    """The trials of one method's study, by what happened to them."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0  # diverged or killed (not counting interrupted or surplus trials)
    running: int = 0
    waiting: int = 0
    best: float | None = None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    @property
    def occupied(self) -> int:
        """Trials that hold a place in the budget: finished, running or queued."""
        return self.finished + self.running + self.waiting


def count_trials(trials: Iterable[Any]) -> Counts:
    from optuna.trial import TrialState

    complete = pruned = failed = running = waiting = 0
    best: float | None = None
    for t in trials:
        if t.state == TrialState.COMPLETE:
            complete += 1
            if t.value is not None and (best is None or t.value > best):
                best = float(t.value)
        elif t.state == TrialState.PRUNED:
            pruned += 1
        elif t.state == TrialState.RUNNING:
            running += 1
        elif t.state == TrialState.WAITING:
            waiting += 1
        elif t.state == TrialState.FAIL and not (
            t.user_attrs.get("surplus") or t.user_attrs.get("interrupted")
        ):
            failed += 1
    return Counts(complete, pruned, failed, running, waiting, best)


def fail_stale(study: Any) -> None:
    """Fail (and queue once for retry) trials whose worker stopped beating: ``kill -9``."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
