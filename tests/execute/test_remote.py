"""The body of a run's Ray task: waiting on the driver's mirror keeps the task's cores."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.execute.ray_cluster import LocalCluster

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.xdist_group("ray_cluster")]

#: Seconds each task waits on the actor (long enough for Ray to start another worker), then
#: computes.
WAIT_S, WORK_S = 2.0, 0.5


class _Slow:
    def answer(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True


def _waits(slow: Any) -> tuple[float, float]:
    from dml_bench.execute.remote import get_keeping_cores

    start = time.time()
    assert get_keeping_cores(slow.answer.remote(WAIT_S)) is True
    time.sleep(WORK_S)
    return start, time.time()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that hold one moment."""
    return max(sum(a <= start < b for a, b in spans) for start, _ in spans)


def test_a_task_waiting_on_the_mirror_keeps_its_cpus(cluster: LocalCluster) -> None:
    """Ray lends the CPUs of a task blocked in ``ray.get`` on its main thread to a queued task;
    with :func:`get_keeping_cores` the cluster's 2 CPUs never run more than 2 one-CPU tasks.
    (A plain ``ray.get`` lets them overlap only when Ray starts the next worker within the wait:
    reliably in a script, not always under pytest, so this guards the property, not always the
    regression.)"""
    import ray

    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        slow = ray.remote(_Slow).options(num_cpus=0).remote()
        ray.get(slow.answer.remote(0))
        task = ray.remote(_waits).options(num_cpus=1)
        spans = ray.get([task.remote(slow) for _ in range(4)])
    finally:
        ray.shutdown()
    assert most_at_once(spans) <= 2, spans
