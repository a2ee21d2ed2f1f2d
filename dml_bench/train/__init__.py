"""The one training loop, its configuration, and the experiment that runs many of them."""

from dml_bench.train.config import PRESETS, RunConfig
from dml_bench.train.experiment import ExperimentRequest, RunOutcome, plan_runs, run_experiment

__all__ = ["PRESETS", "ExperimentRequest", "RunConfig", "RunOutcome", "plan_runs", "run_experiment"]
