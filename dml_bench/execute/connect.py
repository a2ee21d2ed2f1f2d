"""Joining a Ray cluster, and the checks that make bad input fail at once, not after a hang.

Ray is imported here, inside functions, and only for ``--executor ray``. Before ``ray.init`` the
head's port is probed with a plain TCP connection (``connect_timeout_s``): ``ray.init`` itself
retries a dead address for minutes. After joining, the plan is checked against what the cluster
has: a run on ``--device cuda`` needs a node with a GPU, and every run needs a node with
``cpus_per_run`` CPUs, or Ray would queue it forever.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dml_bench.errors import UserError
from dml_bench.execute.settings import ExecutorSettings
from dml_bench.train.config import RunConfig

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "Install it on this machine and on every node of the cluster with "
    '`pip install -c constraints.txt -e ".[ray]"` in a dml-bench checkout (or '
    '`pip install "dml-bench[ray]"`)'
)


class ClusterError(UserError):
    """The Ray cluster cannot be used as asked: Ray missing, nobody at the address, no GPU."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(
            f"--executor ray needs Ray, which cannot be imported here ({exc}). {INSTALL_HINT}, "
            "or train here with --executor local (the default)."
        ) from None
    return ray


def connect(settings: ExecutorSettings) -> tuple[ModuleType, str]:
    """Join the cluster ``settings`` names; returns the ``ray`` module and the address joined
    (``local``: a private instance started for this command)."""
    ray = import_ray()
    address = settings.address or os.environ.get("RAY_ADDRESS") or "auto"
    target = None if address == "local" else _bootstrap_address(address)
    if target is not None:
        probe(target, settings.connect_timeout_s)
    try:
        ray.init(
            address=target or "local",
            logging_level=logging.WARNING,
            log_to_driver=False,
            include_dashboard=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"Could not join the Ray cluster at {target or address} ({exc}). Check that "
            "`ray status` works on this machine, and that this machine runs the same versions "
            "of Python, Ray and dml-bench as the cluster."
        ) from None
    return ray, target or "local"


def _bootstrap_address(address: str) -> str:
    """HOST:PORT of the head for ``address`` (``auto``: as Ray finds it on this machine)."""
    if address != "auto":
        if not _split(address):
            raise ClusterError(
                f"--address {address!r} is not HOST:PORT, auto or local. Give the address "
                "`ray start --head` printed (e.g. 10.0.0.5:6379), or auto for the cluster "
                "started on this machine."
            )
        return address
    from ray._private.services import find_bootstrap_address, find_gcs_addresses

    found = find_bootstrap_address(None) or next(iter(find_gcs_addresses()), None)
    if found is None:
        raise ClusterError(
            "--address auto found no Ray cluster started on this machine. Start one with "
            "`ray start --head` (and `ray start --address HEAD:PORT` on the other machines), "
            "give its address with --address HOST:PORT (or RAY_ADDRESS), or use --address "
            "local for a private Ray instance on this machine."
        )
    return str(found)


def _split(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float) -> None:
    """Raise :class:`ClusterError` unless something accepts TCP connections at ``address``."""
    parts = _split(address)
    assert parts is not None
    try:
        with socket.create_connection(parts, timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc}, waited up to "
            f"{timeout_s:g} s). Start one there with `ray start --head --port {parts[1]}`, or "
            "fix the address (`ray start --head` prints it; `ray status` on the head shows it)."
        ) from None


def check_cluster(
    ray: ModuleType, configs: Sequence[RunConfig], settings: ExecutorSettings
) -> None:
    """Every run must fit on some node: a GPU for ``--device cuda``, ``cpus_per_run`` CPUs."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    where = _describe(nodes)
    for config in configs:
        if config.device.startswith("cuda:"):
            raise ClusterError(
                f"--device {config.device} picks a GPU of one machine; on a Ray cluster each run "
                "is given a GPU by Ray. Use --device cuda."
            )
    if any(c.device == "cuda" for c in configs) and not any(r.get("GPU", 0) >= 1 for r in nodes):
        raise ClusterError(
            f"--device cuda asks the Ray cluster for one GPU per run, but it has none ({where}). "
            "Start nodes with GPUs (`ray start --num-gpus N ...` on a GPU machine), or train on "
            "CPUs with --device cpu."
        )
    if not any(r.get("CPU", 0) >= settings.cpus_per_run for r in nodes):
        raise ClusterError(
            f"Each run asks for {settings.cpus_per_run:g} CPU cores (--cpus-per-run), but no "
            f"node of the Ray cluster has that many ({where}). Lower --cpus-per-run or start "
            "nodes with more (`ray start --num-cpus N`)."
        )


def _describe(nodes: Sequence[dict[str, Any]]) -> str:
    cpus = sum(r.get("CPU", 0) for r in nodes)
    gpus = sum(r.get("GPU", 0) for r in nodes)
    return f"{len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs"


def task_resources(config: RunConfig, settings: ExecutorSettings) -> dict[str, float]:
    """What one run asks the cluster for. ``--device auto`` asks for no GPU, so Ray hides the
    GPUs from it and it trains on the CPU: a GPU is used only when it is reserved."""
    return {
        "num_cpus": settings.cpus_per_run,
        "num_gpus": 1.0 if config.device.startswith("cuda") else 0.0,
    }
