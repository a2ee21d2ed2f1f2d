"""``dml-bench tune``: a thin click command over :mod:`dml_bench.tune`.

:mod:`dml_bench.cli.main` registers this command when it is imported, so this module takes the
CLI's helpers from it only when the command runs (never at import: no import cycle, also when
``python -m dml_bench.cli.main`` runs the CLI as ``__main__``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dml_bench.cli.executor_options import executor_options


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`dml_bench.cli.main.user_errors`, looked up when the command runs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from dml_bench.cli.main import user_errors as handle

        return handle(func)(*args, **kwargs)

    return wrapper


@click.command()
@click.option("--methods", help="Comma-separated methods (default: the five built-in methods).")
@click.option("--dataset", help="Dataset name, or folder:PATH / csv:FILE (default: hershey).")
@click.option("--trials", type=int, required=True, help="Trials per method (the equal budget).")
@click.option(
    "--folds",
    type=int,
    default=4,
    show_default=True,
    help="Class-disjoint folds of the train classes (the Reality Check's 4).",
)
@click.option(
    "--cv/--one-split",
    default=False,
    show_default=True,
    help="Train every fold per trial and average (--cv), or only the first (one split).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every trial.")
@click.option(
    "--no-defaults-trial",
    is_flag=True,
    help="Sample all --trials trials (pure TPE search). By default each method's first trial "
    "trains its hand-picked defaults, inside the same budget.",
)
@click.option("--study", help="Study name (default: the dataset plus a hash of the set-up).")
@click.option(
    "--storage",
    envvar="DML_BENCH_TUNE_STORAGE",
    help="Optuna storage URL, e.g. postgresql://USER:PASS@HOST/DB, shared by every worker on "
    "every machine (default: RESULTS_DIR/tuning/studies.db, SQLite).",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Worker processes here (with --executor ray: worker tasks on the cluster).",
)
@click.option(
    "--heartbeat",
    type=int,
    default=10,
    show_default=True,
    help="Seconds between a worker's heartbeats; a trial silent for 3 beats is failed and retried.",
)
@click.option("--steps", type=int, help="Training steps per trial (and fold).")
@click.option("--eval-every", type=int, help="Validation evaluations (and pruning points) every N.")
@click.option("--batch-size", type=int)
@click.option("--embedding-size", type=int)
@click.option("--optimizer", type=str, help="adam, adamw, rmsprop or sgd.")
@click.option("--trunk", help="Trunk (default: auto).")
@click.option("--pretrained/--no-pretrained", default=None)
@click.option("--preset", help="nofuss or mlrc.")
@click.option("--device", help="auto, cpu, cuda or cuda:N (default: auto).")
@click.option("--num-workers", type=int, help="DataLoader worker processes.")
@click.option("--checkpoint-every", type=int, help="Accepted for symmetry with run; unused.")
@click.option("--data-root", envvar="DML_BENCH_DATA_ROOT", type=click.Path(path_type=Path))
@click.option("--download", is_flag=True, default=None)
@click.option(
    "--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="As for run.")
@click.option("--config", "config_file", type=click.Path(path_type=Path))
@executor_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True)
@user_errors
def tune(**options: Any) -> None:
    """Tune methods with an equal budget on validation classes carved from the train classes.

    Every method gets --trials trials of --steps steps; the objective is validation MAP@R. The
    first trial of each method trains its hand-picked defaults. Run the same command again (here
    or, with --storage, on other machines) to continue or join.
    Then `dml-bench run --tuned` trains each method at its best parameters.
    """
    from dml_bench.cli.executor_options import executor_settings
    from dml_bench.cli.main import EXIT_INTERRUPTED, configure_logging
    from dml_bench.cli.run_options import request_from_options
    from dml_bench.tune import TuneRequest, plan_study
    from dml_bench.tune.local import prepare, tune_locally
    from dml_bench.tune.storage import mask_url

    configure_logging(options["verbose"])
    settings = executor_settings(options)
    experiment = request_from_options({**options, "seeds": str(options["seed"])})
    request = TuneRequest(
        experiment=experiment,
        trials=options["trials"],
        results_dir=options["results_dir"],
        folds=options["folds"],
        cv=options["cv"],
        study=options["study"],
        storage=options["storage"],
        workers=options["workers"],
        heartbeat_s=options["heartbeat"],
        defaults_trial=not options["no_defaults_trial"],
    )
    here = settings.kind == "local"
    plan = plan_study(request, device_here=here)
    prepare(plan, device_here=here)
    progress = None
    if not options["no_progress"]:
        from tqdm import tqdm

        progress = functools.partial(tqdm, file=sys.stderr, dynamic_ncols=True)
    click.echo(
        f"study {plan.group} in {mask_url(plan.storage)}: {', '.join(plan.methods)}, "
        f"{plan.budget.describe()} each"
        + (", the first at its defaults" if plan.defaults_trial else ", all sampled")
        + f", {options['workers']} worker(s)"
        + (" on a Ray cluster" if not here else ""),
        err=True,
    )
    try:
        if here:
            outcome = tune_locally(plan, options["workers"], progress)
        else:
            from dml_bench.execute.trials import tune_on_cluster

            outcome = tune_on_cluster(plan, settings, options["workers"], progress)
    except KeyboardInterrupt:
        click.echo(
            "\nInterrupted: finished trials are kept in the study; the running trial is recorded "
            "as failed (interrupted). Run the same command again to continue.",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    click.echo(format_outcome(plan, outcome))


def format_outcome(plan: Any, outcome: Any) -> str:
    """The study's table: per method, trials by outcome, the defaults trial's validation score
    (from the record just written) and the best one."""
    from dml_bench.tune.record import read_record

    record = read_record(outcome.record) or {}
    metric = "val " + plan.budget.metric
    lines = [
        f"{'method':<20} {'done':>5} {'pruned':>7} {'failed':>7} {'defaults ' + metric:>18} "
        f"{'best ' + metric:>14}"
    ]
    for method, c in outcome.counts.items():
        best = "" if c.best is None else f"{c.best:.4f}"
        entry = record.get("methods", {}).get(method, {}).get("defaults") or {}
        defaults = _defaults_text(entry)
        lines.append(
            f"{method:<20} {c.finished:>5} {c.pruned:>7} {c.failed:>7} {defaults:>18} {best:>14}"
        )
    lines.append(f"\nRecord: {outcome.record} ({outcome.wall_s:.0f} s this session)")
    lines.append(f"Train at the best parameters: dml-bench run --tuned --study {plan.group}")
    return "\n".join(lines)


def _defaults_text(entry: dict[str, Any]) -> str:
    if entry.get("trial") is None:
        return "not tried" if entry.get("reason") else ""
    if entry.get("state") == "complete" and entry.get("value") is not None:
        return f"{entry['value']:.4f}"
    return str(entry.get("state") or "")
