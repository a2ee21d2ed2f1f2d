"""``dml-bench embed`` and ``dml-bench evaluate``: a kept model on any dataset, and scores of
stored embeddings (see :mod:`dml_bench.train.embed`)."""

from __future__ import annotations

from pathlib import Path

import click

from dml_bench.errors import UserError


def _run_dir(run: str, results_dir: Path) -> Path:
    for candidate in (Path(run), results_dir / run):
        if (candidate / "config.json").is_file():
            return candidate
    raise UserError(
        f"No run folder {run!r} (looked at {run} and {results_dir / run}). Name a run folder, or "
        "a run id under --results-dir."
    )


@click.command()
@click.argument("run")
@click.option("--dataset", required=True, help="Dataset name, or folder:PATH / csv:FILE.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="FILE.npz or FILE.csv.")
@click.option(
    "--model",
    "which",
    default="final",
    show_default=True,
    type=click.Choice(["final", "best"]),
    help="The final model, or the best on validation classes (runs with --val-classes).",
)
@click.option(
    "--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@click.option("--data-root", envvar="DML_BENCH_DATA_ROOT", type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True)
def embed(
    run: str,
    dataset: str,
    split: str,
    out: Path,
    which: str,
    results_dir: Path,
    data_root: Path | None,
    device: str,
) -> None:
    """Embed a dataset's split with the model RUN kept; write embeddings and labels to --out."""
    from dml_bench.cli.main import configure_logging
    from dml_bench.train.embed import check_format, embed_with_run, write_embeddings

    configure_logging(False)
    check_format(out)
    embedded = embed_with_run(_run_dir(run, results_dir), dataset, split, data_root, which, device)
    write_embeddings(out, embedded)
    n, d = embedded.embeddings.shape
    click.echo(f"{out}: {n} embeddings of size {d}, {len(embedded.classes)} classes")


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--ks", default="1,2,4,8", show_default=True, help="The K of Recall@K.")
def evaluate(file: Path, ks: str) -> None:
    """Retrieval and clustering metrics of stored embeddings (FILE.npz or FILE.csv)."""
    from dml_bench.cli.main import configure_logging
    from dml_bench.train.embed import evaluate_file

    configure_logging(False)
    try:
        values = tuple(int(k) for k in ks.split(",") if k.strip())
    except ValueError:
        raise UserError(f"--ks {ks!r} must be comma-separated integers, e.g. 1,2,4,8.") from None
    for name, value in evaluate_file(file, values).items():
        click.echo(f"{name:<12} {value:.4f}")
