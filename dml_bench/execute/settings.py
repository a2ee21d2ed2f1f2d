"""What the user chose about where runs train: the executor and, for Ray, the cluster."""

from __future__ import annotations

from dataclasses import dataclass

from dml_bench.errors import ConfigError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSettings:
    """``kind``: ``local`` or ``ray``. ``address``: the cluster for ``ray`` (``auto``: the one
    started on this machine with ``ray start``; ``HOST:PORT``; ``local``: a private Ray instance
    for this command; ``None``: ``$RAY_ADDRESS``, else ``auto``). ``cpus_per_run``: CPU cores a
    run asks the cluster for (a run on ``--device cuda`` asks for one GPU besides).
    ``connect_timeout_s``: how long to wait for a cluster's head to answer."""

    kind: str = "local"
    address: str | None = None
    cpus_per_run: float = 1.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(
                f"Unknown executor {self.kind!r}. Valid executors are: {', '.join(EXECUTORS)}."
            )
        if self.kind == "local" and self.address is not None:
            raise ConfigError(
                f"--address {self.address} names a Ray cluster, but the executor is local. "
                "Add --executor ray to train on the cluster, or drop --address."
            )
        if self.cpus_per_run <= 0:
            raise ConfigError(
                f"--cpus-per-run must be positive, got {self.cpus_per_run}. Give the CPU cores "
                "each run may use, e.g. --cpus-per-run 1."
            )
