"""The defaults trial: every study's first trial trains each method at its hand-picked values.

Why: a study that only samples can pick settings that score *below* the hand-picked ones (the
glyph study's triplet and lifted-structure winners did, on the test classes), and nothing then
says whether the defaults would have won on validation. With the defaults as the first trial, the
best trial is at least as good as the defaults on validation (unless the defaults trial is
pruned or fails, which the record says), and the report shows what tuning bought. Every method
gets the same deal: its own defaults as trial 0, inside the same N-trial budget (the Reality
Check's equal budget, Musgrave et al., ECCV 2020, Sec. 4, is unchanged). ``--no-defaults-trial``
samples all N trials (pure TPE, for a researcher measuring the search itself).

**What "the defaults" are**: the value of each searched parameter in the run's base config (the
method config's field for ``scope="method"``, the run option such as ``lr`` for ``scope="run"``):
what ``dml-bench run --untuned`` with the same options would train. Run options the user gave to
``dml-bench tune`` (``--lr``) are part of that base, so the first trial is the configuration the
user would otherwise have run (``tune`` refuses method parameters set with ``--set``).

**A default outside its search space** (a value below a log range's low bound, a categorical
not among the choices) is never clipped and never enqueued: Optuna would use an out-of-range
fixed value with only a warning, and fail on a categorical it cannot encode. We *skip* that
method's defaults trial, so all N of its trials are sampled, and say so in the log (a warning
naming the parameter, its value and the range), in the study (user attribute
:data:`STUDY_ATTR`), in the record and in the report. We do not enqueue the defaults with the
offending parameter sampled: that trial would not be the hand-picked configuration, and its score
reported as "the defaults' score" would mislead. The fix is the method author's (widen the space
or correct the default); no built-in method has a default outside its space
(``tests/methods/test_space.py``).

**Exactly once per study.** Only the command that *creates* a method's study enqueues the
defaults, right after creating it and before it marks the study initialised (the
``dml_bench`` meta attribute, :func:`dml_bench.tune.study.create_or_join`). Guarantees relied on:

- *one creator*: Optuna's RDB storage gives study names a unique constraint, so of several
  commands (processes here, or machines sharing a PostgreSQL/MySQL/SQLite storage) creating the
  same study at once, exactly one succeeds and the others get ``DuplicatedStudyError`` and join;
- *first*: a joiner waits until the study is marked initialised before any of its workers runs a
  trial, and the creator marks it only after enqueuing, so the defaults trial is trial 0;
- *taken once*: a worker takes a queued trial by a conditional state change WAITING -> RUNNING
  in the storage (Optuna's ``_pop_waiting_trial_id``), so two workers never both run it;
- *never again on resume*: a command that finds the study already there never enqueues.

Optuna's own ``enqueue_trial(skip_if_exists=True)`` is a check-then-insert, which its docs say
may duplicate trials when processes call it at the same time, so we do not rely on it.

A defaults trial that does not finish keeps its place: a worker killed with ``kill -9`` has its
trial retried by the heartbeat callback (which copies the trial's user attributes, so the copy is
still the defaults trial), and a Ctrl-C'd defaults trial is queued again by the worker that ran it
(:func:`requeue_if_defaults`: that worker alone handles its own trial, so no race), to be run
first on resume. A defaults trial that *fails* (its loss diverges) is not retried: the record and
the report say it failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dml_bench.train.config import RunConfig
from dml_bench.tune.plan import searched_space

logger = logging.getLogger(__name__)

#: The trial user attribute that marks the defaults trial (and its retries).
TRIAL_ATTR = "defaults"
#: The study user attribute that records what the defaults were and whether they were enqueued.
STUDY_ATTR = "dml_bench_defaults"

#: Why a study has no defaults trial (the record's ``defaults.reason``).
REASON_FLAG = "--no-defaults-trial"
REASON_OUTSIDE = "outside the search space"


@dataclass(frozen=True)
class MethodDefaults:
    """A method's hand-picked values of its searched parameters, and those outside the space."""

    method: str
    params: dict[str, Any]
    outside: dict[str, str] = field(default_factory=dict)  # name -> why it is outside

    @property
    def in_space(self) -> bool:
        return not self.outside

    def describe_outside(self) -> str:
        return "; ".join(
            f"{name}={self.params[name]!r}: {why}" for name, why in self.outside.items()
        )


def method_defaults(base: RunConfig) -> MethodDefaults:
    """The values ``base`` gives each parameter of its method's search space."""
    params: dict[str, Any] = {}
    outside: dict[str, str] = {}
    for param in searched_space(base):
        value = param.base_value(base.method_config, base)
        params[param.name] = value
        why = param.why_outside(value)
        if why is not None:
            outside[param.name] = why
    return MethodDefaults(base.method, params, outside)


def enqueue_defaults(study: Any, base: RunConfig, enabled: bool) -> dict[str, Any]:
    """Enqueue the method's defaults as the next trial of the (just created) ``study``, unless
    ``enabled`` is false or a default lies outside the space; returns what
    :data:`STUDY_ATTR` records (the caller stores it)."""
    defaults = method_defaults(base)
    entry: dict[str, Any] = {
        "params": defaults.params,
        "outside_space": defaults.outside,
        "enqueued": False,
        "reason": None,
    }
    if not enabled:
        entry["reason"] = REASON_FLAG
        return entry
    if not defaults.in_space:
        logger.warning(
            "%s: its default %s lies outside its search space, so its defaults are not tried "
            "as a trial and all of its trials are sampled. Widen the method's search_space or "
            "correct its default to give it a defaults trial like the other methods.",
            base.method,
            defaults.describe_outside(),
        )
        entry["reason"] = REASON_OUTSIDE
        return entry
    study.enqueue_trial(defaults.params, user_attrs={TRIAL_ATTR: True})
    entry["enqueued"] = True
    return entry


def requeue_if_defaults(trial: Any) -> None:
    """Queue a Ctrl-C'd defaults trial again (same parameters), so the resumed study runs it
    first instead of sampling a trial in its place."""
    if not trial.user_attrs.get(TRIAL_ATTR):
        return
    trial.study.enqueue_trial(
        dict(trial.params), user_attrs={TRIAL_ATTR: True, "requeued_from": trial.number}
    )
    logger.info("the interrupted defaults trial %d is queued again", trial.number)


def defaults_record(study_attrs: dict[str, Any], trials: list[Any]) -> dict[str, Any] | None:
    """The record's ``defaults`` entry of one method: what the defaults were, whether they were
    enqueued (and if not, why), and the defaults trial: the one that finished if any, else the
    latest (waiting, running or failed). ``None`` for a study made before defaults trials."""
    entry = study_attrs.get(STUDY_ATTR)
    if not isinstance(entry, dict):
        return None
    marked = [t for t in trials if t.user_attrs.get(TRIAL_ATTR) and not t.user_attrs.get("surplus")]
    finished = [t for t in marked if t.state.name in ("COMPLETE", "PRUNED")]
    trial = (finished or marked or [None])[-1]
    out = {**entry, "trial": None, "state": None, "value": None, "last_step": None}
    if trial is not None:
        out.update(
            trial=trial.number,
            state=trial.state.name.lower(),
            value=trial.value,
            last_step=trial.last_step,
        )
    return out
