"""The body of a run's Ray task: waiting on the driver's mirror keeps the task's cores.

Ray lends the CPUs of a task blocked in ``ray.get`` on its main thread to a queued task. A run
blocks so at its start and at each push of its records, so before
:func:`~dml_bench.execute.remote.get_keeping_cores` two runs trained at once on a node that had
cores for one. The test records, inside each task, when its run trains and on which node, and
checks that runs asking for all of a node's cores never train there at the same time. With
``train_on_node`` waiting through a plain ``ray.get`` again (the code before the fix) it failed 4
times out of 4: runs overlapped by 1.5 to 9 s on one or both nodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from dml_bench.execute import ExecutorSettings, run_configs
from dml_bench.execute.mirror import RunMirror
from dml_bench.train.config import RunConfig
from dml_bench.train.experiment import RunOutcome
from dml_bench.train.plan import ExperimentRequest, plan_runs
from tests.cli.helpers import shared_data_root
from tests.execute.ray_cluster import LocalCluster

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.xdist_group("ray_cluster")]

#: Four runs on the two one-CPU nodes, each pushing its records 14 times (at its start, after each
#: of its 12 checkpoints, at its end).
STEPS, CHECKPOINT_EVERY = 60, 5
#: Seconds the mirror takes to answer a run's snapshot (its first call) and each push, as over a
#: slow network. Ray lends the cores of a task blocked for some tenths of a second (measured on
#: the idle machine: lent in waits of 0.6 s and 2 s, not 0.2 s); a snapshot or push on loopback
#: takes less. The pushes make a run last about 15 s while it computes for a few, longer than a
#: Ray worker takes to start and fetch its run on the loaded machine (several seconds: it imports
#: torch), so that a run started on lent cores trains beside the run that lent them.
SNAPSHOT_S, PUSH_S = 1.5, 1.0


@dataclasses.dataclass
class TimedOutcome(RunOutcome):
    """A run's outcome with the node it trained on and when (seconds since the epoch)."""

    node: str = ""
    spans: list[tuple[float, float]] = dataclasses.field(default_factory=list)


class SlowMirror(RunMirror):
    """The driver's mirror, answering every :meth:`snapshot` and :meth:`put` late. The waits of
    several runs overlap (``async`` methods make it an asyncio actor), as on a slow network,
    rather than queue one behind the other."""

    async def snapshot(self, run_id: str) -> tuple[int, dict[str, bytes]]:  # type: ignore[override]
        await asyncio.sleep(SNAPSHOT_S)
        return super().snapshot(run_id)

    async def put(self, *args: Any) -> bool:  # type: ignore[override]
        await asyncio.sleep(PUSH_S)
        return super().put(*args)


def timed_train_on_node(config: RunConfig, run_id: str, mirror: Any, threads: int) -> Any:
    """:func:`~dml_bench.execute.remote.train_on_node`, recording in the task when the run trains
    (the call of ``train_claimed``, which reads the data, trains, evaluates and checkpoints)."""
    from dml_bench.execute import remote

    spans: list[tuple[float, float]] = []
    real = remote.train_claimed

    def timed(*args: Any) -> RunOutcome:
        start = time.time()
        try:
            return real(*args)
        finally:
            spans.append((start, time.time()))

    remote.train_claimed = timed  # type: ignore[assignment]
    try:
        outcome = remote.train_on_node(config, run_id, mirror, threads)
    finally:
        remote.train_claimed = real
    assert isinstance(outcome, RunOutcome), outcome
    return TimedOutcome(**vars(outcome), node=remote.node_name(), spans=spans)


def overlaps(spans: list[tuple[float, float]]) -> list[tuple[tuple[float, float], ...]]:
    """Pairs of spans that share a moment."""
    ordered = sorted(spans)
    return [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b[0] < a[1]]


def test_overlaps_finds_spans_that_share_a_moment() -> None:
    assert overlaps([(0, 1), (1, 2), (3, 4)]) == []
    assert overlaps([(3, 4), (0, 2), (1.5, 3.5)]) == [((0, 2), (1.5, 3.5)), ((1.5, 3.5), (3, 4))]


def test_runs_asking_for_a_node_s_cores_never_train_on_it_at_once(
    cluster: LocalCluster,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four runs with --cpus-per-run 1 on two nodes of one CPU: every run completes, and on each
    node no two runs train at the same moment."""
    request = ExperimentRequest(
        methods=("proxy_nca", "nca"),
        seeds=(0, 1),
        run_params={
            "data_root": str(shared_data_root(tmp_path_factory)),
            "steps": STEPS,
            "checkpoint_every": CHECKPOINT_EVERY,
            "eval_every": STEPS,
            "batch_size": 16,
            "embedding_size": 8,
            "diagnostic_classes": 4,
            "diagnostic_triplets": 50,
        },
        dataset_params={"max_classes": 24, "images_per_class": 4, "image_size": 16},
    )
    configs = plan_runs(request, device_here=False)
    monkeypatch.setattr("dml_bench.execute.cluster.train_on_node", timed_train_on_node)
    monkeypatch.setattr("dml_bench.execute.cluster.RunMirror", SlowMirror)
    settings = ExecutorSettings("ray", cluster.address, cpus_per_run=1)
    outcomes = run_configs(configs, tmp_path / "results", settings)
    assert [o.status for o in outcomes] == ["completed"] * 4, outcomes
    by_node: dict[str, list[tuple[float, float]]] = {}
    for outcome in outcomes:
        assert isinstance(outcome, TimedOutcome) and len(outcome.spans) == 1, outcome
        by_node.setdefault(outcome.node, []).extend(outcome.spans)
    start = min(a for spans in by_node.values() for a, _ in spans)
    seen = {
        n: [(round(a - start, 2), round(b - start, 2)) for a, b in s] for n, s in by_node.items()
    }
    for node, spans in by_node.items():
        assert not overlaps(spans), f"runs trained at once on node {node}; seconds: {seen}"
