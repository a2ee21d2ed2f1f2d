"""The ``dml-bench`` command line: thin click commands over library functions.

Each command parses its options, builds a request and calls one library function. Heavy imports
(torch, matplotlib) happen inside commands so ``dml-bench --help`` stays fast. Bad input
(:class:`~dml_bench.errors.UserError`) is printed as one paragraph with exit code 2 and no traceback;
a run that failed makes ``run`` exit with 1; Ctrl-C exits with 130 after recording the run as
interrupted.
"""

from __future__ import annotations

import functools
import logging
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dml_bench.cli.executor_options import executor_options
from dml_bench.errors import UserError
from dml_bench.redact import RedactingFormatter, mask_text

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def user_errors(func: F) -> F:
    """Turn a UserError into one paragraph on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            message = textwrap.fill(
                mask_text(str(exc)), width=100, break_long_words=False, break_on_hyphens=False
            )
            click.echo(f"Error: {message}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def configure_logging(verbose: bool) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(RedactingFormatter("%(message)s"))
    root = logging.getLogger("dml_bench")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="dml-bench")
def cli() -> None:
    """dml-bench: does Proxy-NCA beat triplet-based losses, and does it converge faster?

    Train methods with one loop and one evaluator (`run`), then turn the recorded runs into
    tables and figures that answer the paper's research questions (`report`).
    """


def warn_if_shared(folders: list[tuple[str, Path]]) -> None:
    """Warn once, on stderr, when others can write into these folders (see store/permissions)."""
    from dml_bench.store.permissions import shared_write_warning

    warning = shared_write_warning(folders)
    if warning is not None:
        message = textwrap.fill(warning, width=100, break_long_words=False, break_on_hyphens=False)
        click.echo(f"Warning: {message}", err=True)


@cli.command()
@click.option(
    "--methods",
    help="Comma-separated methods (default: proxy_nca, proxy_nca_dynamic, triplet_semihard, "
    "lifted_structure, nca).",
)
@click.option("--dataset", help="Dataset name, or folder:PATH / csv:FILE (default: hershey).")
@click.option("--seeds", help="Comma-separated seeds (default: 0).")
@click.option("--steps", type=int, help="Training steps per run. [default: 600]")
@click.option(
    "--eval-every", type=int, help="Evaluate on the test classes every N steps. [default: 100]"
)
@click.option("--batch-size", type=int, help="Images per training batch. [default: 64]")
@click.option("--embedding-size", type=int, help="Embedding dimension. [default: 64]")
@click.option("--lr", type=float, help="Learning rate of the network. [default: 0.001]")
@click.option("--optimizer", type=str, help="adam, adamw, rmsprop or sgd. [default: adam]")
@click.option(
    "--trunk",
    help="small_cnn, googlenet, resnet50, or auto: chosen from the images' size, the device and "
    "whether ImageNet weights are cached, and said in one line. [default: auto]",
)
@click.option(
    "--pretrained/--no-pretrained",
    default=None,
    help="ImageNet weights for the trunk. [default: auto: on for googlenet/resnet50]",
)
@click.option(
    "--freeze-bn/--no-freeze-bn", default=None, help="Freeze batch-norm layers. [default: off]"
)
@click.option(
    "--resize",
    type=int,
    help="Shorter side of photos before cropping, px. [default: auto: 256, or the images' own "
    "size up to 72 for small_cnn]",
)
@click.option(
    "--crop",
    type=int,
    help="Square crop of photos, px (random when training, centre when evaluating). "
    "[default: auto: 227, or 7/8 of resize for small_cnn]",
)
@click.option("--preset", help="nofuss (the paper's set-up) or mlrc (Reality Check).")
@click.option(
    "--val-classes",
    type=float,
    help="Fraction of train classes held out for validation. [default: 0.0]",
)
@click.option("--device", help="auto, cpu, cuda or cuda:N. [default: auto]")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA. [default: on]")
@click.option("--num-workers", type=int, help="DataLoader worker processes. [default: 0]")
@click.option(
    "--checkpoint-every", type=int, help="Checkpoint every N steps (for resume). [default: 100]"
)
@click.option(
    "--keep/--no-keep",
    default=None,
    help="Keep the trained model (safetensors) and the test embeddings in each run folder. "
    "[default: on]",
)
@click.option(
    "--log",
    "log",
    metavar="LOGGERS",
    help="Also log runs to tensorboard and/or mlflow (comma-separated; pip install "
    '"dml-bench[tracking]"). [default: none]',
)
@click.option(
    "--data-root",
    envvar="DML_BENCH_DATA_ROOT",
    type=click.Path(path_type=Path),
    help="Where datasets live (env: DML_BENCH_DATA_ROOT; default ~/.cache/dml-bench).",
)
@click.option("--download", is_flag=True, default=None, help="Download missing datasets.")
@click.option(
    "--prepared/--no-prepared",
    default=None,
    help="Read photos from a matching `dml-bench prepare` cache when one exists (default: on).",
)
@click.option(
    "--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUES",
    help="Set a parameter: METHOD.FIELD=v (a method's), dataset.FIELD=v (the dataset's) "
    "or FIELD=v (a run option). Comma-separated values sweep: proxy_nca.scale=3,9.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="A TOML file with [run], [methods.NAME] and [dataset] tables; flags override it.",
)
@click.option(
    "--rerun", is_flag=True, help="Train again beside completed runs instead of skipping."
)
@click.option(
    "--tuned",
    is_flag=True,
    help="Train each method at the best parameters of its `dml-bench tune` study.",
)
@click.option("--study", help="With --tuned: the study to take parameters from.")
@click.option(
    "--untuned",
    is_flag=True,
    help="Train at the methods' hand-picked defaults, not at the winners of the study the "
    "dataset ships (docs/tuning/README.md).",
)
@executor_options
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", is_flag=True)
@user_errors
def run(**options: Any) -> None:
    """Train methods on a dataset and record every run under --results-dir.

    Re-running the same command resumes unfinished runs and skips completed ones.
    """
    from dml_bench.cli.executor_options import executor_settings
    from dml_bench.cli.run_options import request_from_options

    configure_logging(options["verbose"])
    try:
        settings = executor_settings(options)
        request = request_from_options(options)
        from dml_bench.train import plan_runs

        configs = plan_runs(request, device_here=settings.kind == "local")
        if options["study"] and not options["tuned"]:
            raise UserError(f"--study {options['study']} names a tuning study: add --tuned.")
        if options["tuned"] and options["untuned"]:
            raise UserError(
                "--tuned and --untuned contradict each other: --tuned takes the parameters of "
                "a study under --results-dir, --untuned the hand-picked defaults. Give one."
            )
        if options["tuned"]:
            from dml_bench.tune.tuned import apply_tuning

            configs = apply_tuning(configs, options["results_dir"], options["study"])
        elif not options["untuned"]:
            from dml_bench.tune.packaged import apply_packaged

            configs = apply_packaged(configs, request)
    except KeyboardInterrupt:
        click.echo("\nInterrupted before any run started; nothing was written.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    progress = None
    if not options["no_progress"]:
        from tqdm import tqdm

        progress = functools.partial(tqdm, file=sys.stderr, dynamic_ncols=True)
    warn_if_shared([("results folder", options["results_dir"])])
    click.echo(f"{len(configs)} run(s) into {options['results_dir']}", err=True)
    outcomes = _run_or_exit_on_interrupt(
        configs, options["results_dir"], options["rerun"], progress, settings
    )
    click.echo(format_outcomes(outcomes))
    click.echo(f"\nReport: dml-bench report --results-dir {options['results_dir']}")
    if any(o.status == "failed" for o in outcomes):
        sys.exit(EXIT_RUN_FAILED)


def _run_or_exit_on_interrupt(
    configs: list[Any], results_dir: Path, rerun: bool, progress: Any, settings: Any
) -> list[Any]:
    """Run the experiment; Ctrl-C exits with 130 after the loop recorded the run as interrupted
    (with --executor ray: every running run, each cancelled at its next step)."""
    from dml_bench.execute import run_configs

    try:
        return run_configs(configs, results_dir, settings, rerun=rerun, progress=progress)
    except KeyboardInterrupt:
        which = "every running run was" if settings.kind == "ray" else "the current run was"
        click.echo(
            f"\nInterrupted: {which} checkpointed and recorded as interrupted. "
            "Run the same command again to resume.",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)


def format_outcomes(outcomes: list[Any]) -> str:
    lines = [f"{'run':<52} {'status':<10} {'R@1':>6} {'NMI':>6}"]
    for o in outcomes:
        r1 = o.final.get("recall@1")
        nmi = o.final.get("nmi")
        lines.append(
            f"{o.run_id:<52} {o.status:<10} "
            f"{'' if r1 is None else f'{r1:.4f}':>6} {'' if nmi is None else f'{nmi:.4f}':>6}"
            + (f"  ({mask_text(o.reason)})" if o.reason else "")
        )
    return "\n".join(lines)


@cli.command()
@click.option(
    "--dataset", required=True, help="A photo dataset: cub200, cars196, sop, folder:PATH, csv:FILE."
)
@click.option(
    "--data-root",
    envvar="DML_BENCH_DATA_ROOT",
    type=click.Path(path_type=Path),
    help="Where datasets live; caches go under DATA_ROOT/prepared (env: DML_BENCH_DATA_ROOT).",
)
@click.option("--download", is_flag=True, help="Download the dataset first if it is missing.")
@click.option(
    "--resize",
    type=int,
    default=256,
    show_default=True,
    help="Shorter side in pixels; runs read the cache when their resize option matches it.",
)
@click.option("--num-workers", type=int, default=2, show_default=True, help="Decoding processes.")
@click.option(
    "--check",
    is_flag=True,
    help="Only decode every image of both splits and list the corrupt ones (writes nothing).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@user_errors
def prepare(
    dataset: str,
    data_root: Path | None,
    download: bool,
    resize: int,
    num_workers: int,
    check: bool,
    no_progress: bool,
) -> None:
    """Decode and resize a photo dataset once, so that runs skip JPEG decoding.

    Runs use a matching cache automatically and see exactly the pixels they would see without it
    (--no-prepared reads the originals). Interrupted, the same command resumes.
    """
    from dml_bench.data import DATASETS, default_data_root
    from dml_bench.data.prepared import prepare_splits
    from dml_bench.train.plan import split_dataset_name

    configure_logging(False)
    if num_workers < 0:
        raise UserError(f"--num-workers must be >= 0, got {num_workers}.")
    name, extra = split_dataset_name(dataset)
    spec = DATASETS.get(name)
    progress = None
    if not no_progress:
        from tqdm import tqdm

        progress = functools.partial(tqdm, file=sys.stderr, dynamic_ncols=True)
    if check:
        _check_images(
            spec, spec.make_config(extra), data_root or default_data_root(), download, progress
        )
        return
    try:
        results = prepare_splits(
            spec,
            spec.make_config(extra),
            data_root or default_data_root(),
            resize,
            download=download,
            num_workers=num_workers,
            progress=progress,
        )
    except KeyboardInterrupt:
        click.echo(
            "\nInterrupted: what was written is kept. Run the same command again to resume.",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    for result in results:
        state = "already complete" if result.already_complete else "written"
        click.echo(
            f"{result.folder}: {result.images} images, {result.bytes / 2**30:.2f} GiB ({state})"
        )


def _check_images(spec: Any, config: Any, root: Path, download: bool, progress: Any) -> None:
    from dml_bench.data.check import corrupt_images

    read, bad = corrupt_images(spec, config, root, download, progress)
    for path, error in bad:
        click.echo(f"{path}: {error}")
    if bad:
        raise UserError(
            f"{len(bad)} of the {read} images of {spec.name} cannot be decoded (listed above). "
            "Replace them (e.g. extract the dataset again) or remove them from the dataset."
        )
    click.echo(f"{spec.name}: all {read} images decode.")


@cli.command()
@click.option(
    "--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Where to write tables and figures (default: RESULTS_DIR/report).",
)
@click.option(
    "--format",
    "fmt",
    default="markdown",
    show_default=True,
    help="Table format printed: markdown, csv, json or latex.",
)
@click.option(
    "--target",
    type=float,
    default=0.9,
    show_default=True,
    help="Fraction of each method's best Recall@1 that counts as converged (RQ2).",
)
@user_errors
def report(results_dir: Path, out: Path | None, fmt: str, target: float) -> None:
    """Tables and figures answering the paper's research questions, from recorded runs."""
    from dml_bench.report import make_report

    configure_logging(False)
    result = make_report(
        results_dir, out or results_dir / "report", fmt=fmt, target_fraction=target
    )
    click.echo(result.text)


def _add_commands() -> None:
    """Commands kept in their own modules; they get the same handling of bad input as the
    commands here."""
    from dml_bench.cli.clean import clean
    from dml_bench.cli.embeddings import embed, evaluate
    from dml_bench.cli.listing import datasets, methods, trunks
    from dml_bench.cli.tune import tune

    cli.add_command(tune)
    for command in (clean, embed, evaluate, methods, trunks, datasets):
        assert command.callback is not None
        command.callback = user_errors(command.callback)
        cli.add_command(command)


_add_commands()


def main() -> None:
    cli(prog_name="dml-bench")


if __name__ == "__main__":
    main()
