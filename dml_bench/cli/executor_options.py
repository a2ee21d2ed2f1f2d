"""The options that choose where runs and trials train, shared by ``run`` and ``tune``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def executor_options(func: F) -> F:
    """``--executor``, ``--address`` and ``--cpus-per-run`` (README, "Many machines")."""
    options = [
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: train here, one run after another; ray: every run is a task of a Ray "
            'cluster (pip install "dml-bench[ray]"), records written here.',
        ),
        click.option(
            "--address",
            help="With --executor ray: the cluster's head, HOST:PORT as `ray start --head` "
            "printed, auto (the cluster started on this machine) or local (a private Ray "
            "instance for this command). [default: $RAY_ADDRESS, else auto]",
        ),
        click.option(
            "--cpus-per-run",
            type=float,
            default=1.0,
            show_default=True,
            help="With --executor ray: CPU cores each run asks the cluster for (also its torch "
            "threads); --device cuda asks for one GPU besides.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def executor_settings(options: Mapping[str, Any]) -> Any:
    from dml_bench.execute import ExecutorSettings

    return ExecutorSettings(
        kind=options["executor"],
        address=options["address"],
        cpus_per_run=options["cpus_per_run"],
    )
