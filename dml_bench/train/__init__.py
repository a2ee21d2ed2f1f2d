"""The one training loop, its configuration, planning, and the experiment that runs many runs."""

from dml_bench.train.config import PRESETS, RunConfig
from dml_bench.train.experiment import RunOutcome, run_experiment
from dml_bench.train.plan import ExperimentRequest, plan_runs

__all__ = ["PRESETS", "ExperimentRequest", "RunConfig", "RunOutcome", "plan_runs", "run_experiment"]
