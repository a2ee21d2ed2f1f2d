"""``dml-bench tune``: every method tuned with an equal budget on validation classes.

Layout: :mod:`~dml_bench.tune.plan` (request -> checked plan), :mod:`~dml_bench.tune.folds`
(class-disjoint folds of the train classes), :mod:`~dml_bench.tune.adapter` (the one bridge to the
training loop), :mod:`~dml_bench.tune.study` (Optuna: sampler, pruner, counts),
:mod:`~dml_bench.tune.worker` (run trials; plain picklable entry points),
:mod:`~dml_bench.tune.local` (this machine's worker processes and progress),
:mod:`~dml_bench.tune.record` (``study.json``) and :mod:`~dml_bench.tune.tuned` (``run --tuned``).
"""

from dml_bench.tune.plan import StudyPlan, TuneRequest, plan_study

__all__ = ["StudyPlan", "TuneRequest", "plan_study"]
