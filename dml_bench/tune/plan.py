"""From ``dml-bench tune``'s options to a :class:`StudyPlan`: every check before anything is written.

A study is a *group*: one Optuna study per method (``GROUP:METHOD``), all with the same budget
(trials, steps per trial, folds) and the same run set-up, so the comparison is fair by
construction (Musgrave et al., *A Metric Learning Reality Check*, ECCV 2020, Sec. 3-4: every method
gets the same number of trials on validation classes carved from the train classes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dml_bench.config import config_hash
from dml_bench.errors import ConfigError
from dml_bench.methods import METHODS
from dml_bench.methods.space import SearchParam, resolve_space
from dml_bench.train.config import RunConfig
from dml_bench.train.plan import ExperimentRequest, plan_runs
from dml_bench.tune.storage import check_url, default_storage

#: The validation metric the Reality Check optimises (its Sec. 3.2: MAP@R is more informative
#: than Recall@1, which saturates).
DEFAULT_METRIC = "map@r"

#: Folds the train classes are partitioned into. 4 as the Reality Check (Sec. 4.1, 4-fold
#: cross-validation on the train classes); by default a trial trains on one of them (one split:
#: 3/4 of the train classes for training, 1/4 for validation), which costs a quarter of full
#: cross-validation on a laptop; ``--cv`` trains all K folds and averages.
DEFAULT_FOLDS = 4
DEFAULT_HEARTBEAT_S = 10
#: The key of :meth:`StudyPlan.meta` that says whether the study's first trial is each method's
#: defaults (:mod:`dml_bench.tune.defaults`); studies made before it lack the key.
DEFAULTS_META = "defaults_trial"


@dataclass(frozen=True)
class Budget:
    """What every method of a study gets: the same trials, steps and folds."""

    trials: int
    steps: int
    folds: int
    cv: bool
    metric: str
    seed: int

    def describe(self) -> str:
        folds = f"{self.folds}-fold cross-validation" if self.cv else f"1 of {self.folds} folds"
        return f"{self.trials} trials x {self.steps} steps ({folds}, validation {self.metric})"


@dataclass(frozen=True)
class TuneRequest:
    """What the user asked ``dml-bench tune`` for (run options already parsed)."""

    experiment: ExperimentRequest
    trials: int
    results_dir: Path
    folds: int = DEFAULT_FOLDS
    cv: bool = False
    study: str | None = None
    storage: str | None = None
    workers: int = 1
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    defaults_trial: bool = True  # the first trial trains each method's defaults


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker needs to run trials: picklable, so it can be sent to a process."""

    group: str
    storage: str
    dataset: str
    methods: tuple[str, ...]
    budget: Budget
    base: tuple[RunConfig, ...]  # one per method, in the order of ``methods``
    results_dir: Path
    heartbeat_s: int
    defaults_trial: bool = True

    def base_config(self, method: str) -> RunConfig:
        return self.base[self.methods.index(method)]

    def search_space(self, method: str) -> tuple[SearchParam, ...]:
        return searched_space(self.base_config(method))

    def study_name(self, method: str) -> str:
        return f"{self.group}:{method}"

    def meta(self) -> dict[str, object]:
        """What identifies the study group; a second command must agree with it to join."""
        return {
            "group": self.group,
            "dataset": self.dataset,
            "methods": list(self.methods),
            "budget": dataclasses.asdict(self.budget),
            "setup": {c.method: c.identity() for c in self.base},
            DEFAULTS_META: self.defaults_trial,
        }


def searched_space(base: RunConfig) -> tuple[SearchParam, ...]:
    """The search space of ``base.method`` for a study whose trials start from ``base``: relative
    ranges (the network's ``lr``) scaled by ``base``'s own values."""
    space = METHODS.get(base.method).search_space
    return resolve_space(space, {p.name: p.base_value(base.method_config, base) for p in space})


def plan_study(request: TuneRequest, *, device_here: bool = True) -> StudyPlan:
    """Resolve and check the request; raises a :class:`~dml_bench.errors.UserError`.
    ``device_here=False``: the trials train on a cluster, whose devices its executor checks."""
    check_counts(request)
    experiment = request.experiment
    if len(experiment.seeds) != 1:
        raise ConfigError("dml-bench tune takes one --seed (the seed every trial trains with).")
    if "val_classes" in experiment.run_params:
        raise ConfigError(
            "--val-classes cannot be combined with dml-bench tune: the study carves its own "
            "validation classes out of the train classes (--folds K). Drop --val-classes."
        )
    for method in experiment.methods:
        if not METHODS.get(method).search_space:
            raise ConfigError(
                f"Method {method!r} declares no search space (MethodSpec.search_space is empty), "
                "so it cannot be tuned. Drop it from --methods, or give its spec a search_space "
                "of dml_bench.methods.SearchParam entries (see dml_bench/methods/space.py)."
            )
    configs = [
        untuned_trial_base(c, request) for c in plan_runs(experiment, device_here=device_here)
    ]
    variants = [c.variant for c in configs if c.variant != c.method]
    if variants:
        raise ConfigError(
            f"dml-bench tune tunes each method from its built-in config, and {', '.join(variants)} "
            "sets a method parameter to another value (a --set METHOD.FIELD sweep or a single "
            "value). Drop that --set: a searched parameter is the study's to choose (see "
            "`dml-bench methods --spaces`), and a fixed non-default value is not supported by "
            "tune yet."
        )
    budget = Budget(
        trials=request.trials,
        steps=configs[0].steps,
        folds=request.folds,
        cv=request.cv,
        metric=DEFAULT_METRIC,
        seed=configs[0].seed,
    )
    storage = request.storage or default_storage(request.results_dir)
    check_url(storage)
    group = request.study or default_group(configs, budget, request.defaults_trial)
    if not group or ":" in group or "/" in group:
        raise ConfigError(
            f"--study {group!r} is not a usable study name: use letters, digits, '-', '_' or "
            "'.', e.g. --study glyphs-equal-budget."
        )
    return StudyPlan(
        group=group,
        storage=storage,
        dataset=configs[0].dataset,
        methods=tuple(c.method for c in configs),
        budget=budget,
        base=tuple(configs),
        results_dir=Path(request.results_dir),
        heartbeat_s=request.heartbeat_s,
        defaults_trial=request.defaults_trial,
    )


def check_counts(request: TuneRequest) -> None:
    if request.trials < 1:
        raise ConfigError(
            f"--trials {request.trials}: a study needs at least one trial per method. Use e.g. "
            "--trials 20."
        )
    if request.folds < 2:
        raise ConfigError(
            f"--folds {request.folds}: the train classes are split into K class-disjoint folds, "
            "one of which validates while the others train, so K must be at least 2 (the "
            "Reality Check uses 4: --folds 4)."
        )
    if request.workers < 1:
        raise ConfigError(f"--workers {request.workers}: give at least 1 worker process.")
    if request.heartbeat_s < 1:
        raise ConfigError(f"--heartbeat {request.heartbeat_s}: give at least 1 second.")


#: The fields a trial's base sets apart from the run the user asked for (see below).
TRIAL_ONLY_FIELDS = frozenset(
    {"val_classes", "checkpoint_every", "diagnostics", "retrieval_queries"}
)


def untuned_trial_base(config: RunConfig, request: TuneRequest) -> RunConfig:
    """The run every trial of a method starts from: no test-time extras (the loop's evaluation
    split is a validation fold), no checkpoints inside a trial (a killed trial is re-run)."""
    return dataclasses.replace(
        config,
        val_classes=0.0,
        checkpoint_every=config.steps,
        diagnostics=False,
        retrieval_queries=0,
    )


def default_group(configs: list[RunConfig], budget: Budget, defaults_trial: bool = True) -> str:
    """A name that the same command always gives, and another set-up never shares
    (``--no-defaults-trial`` is part of the hash only when given, so the names of studies made
    before defaults trials existed stay the same)."""
    identity: dict[str, object] = {
        "methods": sorted(c.method for c in configs),
        "budget": dataclasses.asdict(budget),
        "setup": sorted(c.identity() for c in configs),
    }
    if not defaults_trial:
        identity[DEFAULTS_META] = False
    key = config_hash(identity, length=8)
    return f"{configs[0].dataset}-{key}"
