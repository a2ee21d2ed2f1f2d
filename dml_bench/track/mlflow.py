"""MLflow: params, metrics over steps and the run's records, to ``MLFLOW_TRACKING_URI``.

Without ``MLFLOW_TRACKING_URI`` the runs go to MLflow's default local store, the SQLite file
``mlflow.db`` in the current folder (``mlflow ui`` started there shows them): MLflow 3 keeps its
older ``./mlruns`` folder store in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE=true``, which a user may set together with
``MLFLOW_TRACKING_URI=./mlruns``. Each dml-bench run is one MLflow run of the experiment
``$MLFLOW_EXPERIMENT_NAME`` (default ``dml-bench``), named by its run id and tagged
``dml_bench.run_id``, so a resumed run continues the same MLflow run. At the end the run folder's
records (config.json, env.json, metrics.csv, summary.json, status.json, model.json) are logged as
artifacts; model weights are not (they stay in the run folder).

MLflow metric names may not hold ``@``: ``recall@1`` is logged as ``recall_at_1``. The tracking
URI is shown masked (:func:`dml_bench.redact.mask_url`). MLflow's HTTP client retries a failed
request 7 times with growing back-off by default (minutes on a dead server); unless the
environment sets them, this tracker asks for 2 retries and a 10 s timeout, so a server that goes
away costs a run seconds once, after which the tracker is dropped (:mod:`dml_bench.track`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dml_bench.redact import mask_url

logger = logging.getLogger(__name__)

EXPERIMENT = "dml-bench"
RUN_ID_TAG = "dml_bench.run_id"
ARTIFACTS = ("config.json", "env.json", "metrics.csv", "summary.json", "status.json", "model.json")
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
#: MLflow's limits: 100 params / 1000 metrics per batch call, 6000 characters per param value.
_PARAM_BATCH, _METRIC_BATCH, _PARAM_CHARS = 100, 1000, 6000
ENV_DEFAULTS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout is the CLI's
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else MLflow's own default: ``mlflow.db`` (SQLite) in the current
    folder, a local file that ``mlflow ui`` started there shows."""
    import mlflow

    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def metric_key(tag: str) -> str:
    return tag.replace("@", "_at_")


class MlflowTracker:
    def __init__(self, run_id: str) -> None:
        from mlflow import MlflowClient

        for name, value in ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        self.uri = tracking_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        found = self.client.search_runs(
            [experiment_id], f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1
        )
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment_id, run_name=run_id, tags={RUN_ID_TAG: run_id})
            self.run_id = run.info.run_id
        logger.info("mlflow: %s logs to run %s at %s", run_id, self.run_id, mask_url(self.uri))

    def start(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        items = [
            Param(k, str(v)[:_PARAM_CHARS]) for k, v in sorted(params.items()) if k not in logged
        ]
        for i in range(0, len(items), _PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _PARAM_BATCH])

    def metrics(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(metric_key(k), float(v), now, step)
            for step, values in points
            for k, v in values.items()
        ]
        for i in range(0, len(items), _METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _METRIC_BATCH])

    def finish(self, status: str, run_dir: Path) -> None:
        for name in ARTIFACTS:
            if (Path(run_dir) / name).is_file():
                self.client.log_artifact(self.run_id, str(Path(run_dir) / name))
        self.client.set_terminated(self.run_id, STATUS.get(status, "FINISHED"))
