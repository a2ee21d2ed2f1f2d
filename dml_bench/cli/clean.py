"""``dml-bench clean``: remove the folders of runs that never trained a step (dry run first)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--results-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@click.option("--yes", is_flag=True, help="Remove them (without it, only list them).")
def clean(results_dir: Path, yes: bool) -> None:
    """List the folders of runs that never trained a step; remove them with --yes.

    Such folders hold no result (a run stopped by bad input or Ctrl-C before its first step).
    Completed runs, runs with a checkpoint and runs another process is training are never touched.
    """
    from dml_bench.cli.main import configure_logging
    from dml_bench.store.clean import find_untrained, remove_untrained

    configure_logging(False)
    found = find_untrained(results_dir)
    if not found:
        click.echo(f"No run folder in {results_dir} is without a trained step; nothing to do.")
        return
    for folder in found:
        click.echo(f"{folder.path}: {folder.detail}")
    if not yes:
        click.echo(
            f"\nDry run: {len(found)} folder(s) would be removed. "
            f"Run `dml-bench clean --results-dir {results_dir} --yes` to remove them."
        )
        return
    removed = remove_untrained(found)
    kept = len(found) - len(removed)
    click.echo(
        f"\nRemoved {len(removed)} folder(s)"
        + (f"; {kept} left alone (being trained or trained meanwhile)." if kept else ".")
    )
