"""Executors: where the runs of a plan train.

``local`` (the default) trains them one after another in this process
(:func:`dml_bench.train.run_experiment`); ``ray`` makes every run a task of a Ray cluster
(:mod:`dml_bench.execute.cluster`), whose records come back into the same results directory
(:mod:`dml_bench.execute.mirror`). Nothing of Ray is imported unless ``ray`` is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dml_bench.execute.settings import EXECUTORS, ExecutorSettings

if TYPE_CHECKING:
    from dml_bench.train.config import RunConfig
    from dml_bench.train.experiment import RunOutcome
    from dml_bench.train.loop import ProgressFactory

__all__ = ["EXECUTORS", "ExecutorSettings", "run_configs"]


def run_configs(
    configs: Sequence[RunConfig],
    results_dir: Path,
    settings: ExecutorSettings,
    *,
    rerun: bool = False,
    progress: ProgressFactory | None = None,
) -> list[RunOutcome]:
    """Train ``configs`` into ``results_dir`` with the executor ``settings`` names."""
    if settings.kind == "ray":
        from dml_bench.execute.cluster import run_on_cluster

        return run_on_cluster(configs, results_dir, settings, rerun=rerun, progress=progress)
    from dml_bench.train.experiment import run_experiment

    return run_experiment(configs, results_dir, rerun=rerun, progress=progress)
