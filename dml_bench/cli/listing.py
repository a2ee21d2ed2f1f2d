"""``dml-bench methods``, ``trunks`` and ``datasets``: what is registered (plugins included)."""

from __future__ import annotations

from pathlib import Path

import click

from dml_bench.errors import UserError


@click.command()
@click.option(
    "--spaces",
    is_flag=True,
    help="Under each method, what `dml-bench tune` searches, each value's default (its first "
    "trial) and where each range comes from.",
)
def methods(spaces: bool) -> None:
    """List the registered methods (built-in and plugins)."""
    from dml_bench.methods import METHODS

    names = METHODS.names()
    origins = {name: str(METHODS.origin(name)) for name in names}
    name_width = max(map(len, names)) + 2
    origin_width = max(map(len, origins.values())) + 2
    for name in names:
        spec = METHODS.get(name)
        config = spec.default_config()
        needs = (
            "random batches" if config.m_per_class is None else f"{config.m_per_class} per class"
        )
        click.echo(
            f"{name:<{name_width}}{spec.family:<7}{origins[name]:<{origin_width}}{needs:<16}"
            f"{spec.description}"
        )
        if spaces:
            from dml_bench.train.config import RunConfig

            run = RunConfig()  # the run options a search starts from by default (its ``lr``)
            for param in spec.search_space or ():
                value = param.base_value(config, run)
                absolute = param.resolve(value)
                outside = absolute.why_outside(value)
                note = (
                    "" if outside is None else f", OUTSIDE the space ({outside}): no defaults trial"
                )
                at = f" (so [{absolute.low:g}, {absolute.high:g}])" if param.relative else ""
                click.echo(
                    f"    {param.describe()}; default {value!r}{at}{note} "
                    f"({param.scope}; {param.citation})"
                )
            if not spec.search_space:
                click.echo("    no search space: cannot be tuned")


@click.command()
def trunks() -> None:
    """List the registered trunks (the networks an embedding head is put on)."""
    from dml_bench.models import TRUNKS

    for name in TRUNKS.names():
        click.echo(f"{name:<12} {TRUNKS.get(name).description}")


@click.command()
@click.option("--data-root", envvar="DML_BENCH_DATA_ROOT", type=click.Path(path_type=Path))
@click.option(
    "--results-dir",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Results folder whose permissions are checked too (others must not write into it).",
)
def datasets(data_root: Path | None, results_dir: Path) -> None:
    """List the registered datasets, where each looks for its files, and whether it found them."""
    from dml_bench.cli.main import warn_if_shared
    from dml_bench.config import field_names
    from dml_bench.data import DATASETS, default_data_root
    from dml_bench.data.prepared import list_prepared

    root = data_root or default_data_root()
    warn_if_shared([("results folder", results_dir)])
    click.echo(f"data root: {root}")
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        if "path" in field_names(spec.config_cls):
            click.echo(
                f"{name:<10} {'-':<8} (your data: --dataset {name}:PATH)\n{'':<10} {spec.description}"
            )
            continue
        try:
            located = spec.locate(root, spec.make_config({}))
            where, found = str(located.path), "found" if located.found else "missing"
        except UserError:
            where, found = "(needs a path: --dataset " + name + ":PATH)", "-"
        click.echo(f"{name:<10} {found:<8} {where}\n{'':<10} {spec.description}")
        for cache in list_prepared(root, name):
            click.echo(
                f"{'':<10} prepared: {cache['split']}, resize {cache['resize']}, "
                f"{cache['images']} images, {cache['bytes'] / 2**30:.2f} GiB ({cache['folder']})"
            )
