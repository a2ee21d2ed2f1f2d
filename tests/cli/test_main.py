"""The thin CLI: exit codes, one-paragraph errors, listings, the outcome table."""

from __future__ import annotations

import logging
import sys

import click
import pytest
from click.testing import CliRunner

from dml_bench.cli import main
from dml_bench.errors import ConfigError
from dml_bench.methods import METHODS
from dml_bench.train import RunOutcome


def test_user_errors_become_one_paragraph_and_exit_2() -> None:
    @click.command()
    @main.user_errors
    def broken() -> None:
        raise ConfigError("Something is wrong with a rather long value " + "x" * 150 + " here.")

    result = CliRunner().invoke(broken)
    assert result.exit_code == main.EXIT_USER_ERROR == 2
    assert result.output.startswith("Error: Something is wrong")
    assert "Traceback" not in result.output and "\n\n" not in result.output.strip()


def test_other_exceptions_keep_their_traceback() -> None:
    @click.command()
    @main.user_errors
    def buggy() -> None:
        raise ValueError("a bug")

    result = CliRunner().invoke(buggy)
    assert isinstance(result.exception, ValueError)


def test_methods_lists_every_method_with_its_declared_family() -> None:
    result = CliRunner().invoke(main.cli, ["methods"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == len(METHODS.names())
    for name, line in zip(METHODS.names(), lines, strict=True):
        assert line.split()[:2] == [name, METHODS.get(name).family]


def test_prepare_reads_the_dataset_name_with_the_planner() -> None:
    result = CliRunner().invoke(main.cli, ["prepare", "--dataset", "folder:"])
    assert result.exit_code == 2 and "'folder:' needs a path" in " ".join(result.output.split())


def test_format_outcomes_shows_metrics_and_reasons() -> None:
    outcomes = [
        RunOutcome("r-1", "m", 0, "completed", final={"recall@1": 0.51234, "nmi": 0.4}),
        RunOutcome("r-2", "m", 1, "failed", "RuntimeError: boom"),
    ]
    lines = main.format_outcomes(outcomes).splitlines()
    assert lines[0].split() == ["run", "status", "R@1", "NMI"]
    assert lines[1].split() == ["r-1", "completed", "0.5123", "0.4000"]
    assert lines[2].split()[:2] == ["r-2", "failed"] and lines[2].endswith("(RuntimeError: boom)")


def test_logging_goes_to_one_handler_at_the_chosen_level() -> None:
    main.configure_logging(verbose=True)
    root = logging.getLogger("dml_bench")
    assert root.level == logging.DEBUG and len(root.handlers) == 1 and not root.propagate
    main.configure_logging(verbose=False)
    assert root.level == logging.INFO and len(root.handlers) == 1


def test_help_imports_no_torch() -> None:
    """--help stays fast: heavy imports happen inside commands."""
    import subprocess

    code = (
        "import sys; from dml_bench.cli.main import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


@pytest.mark.parametrize("command", ["run", "report", "prepare", "methods", "datasets", "trunks"])
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main.cli, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_methods_spaces_lists_each_searched_value_with_its_range_and_citation() -> None:
    result = CliRunner().invoke(main.cli, ["methods", "--spaces"])
    assert result.exit_code == 0
    blocks: dict[str, list[str]] = {}
    current = ""
    for line in result.output.splitlines():
        if line.startswith("    "):
            blocks[current].append(line.strip())
        else:
            current = line.split()[0]
            blocks[current] = []
    assert list(blocks) == METHODS.names()
    for name, lines in blocks.items():
        space = METHODS.get(name).search_space
        if not space:
            assert lines == ["no search space: cannot be tuned"]
            continue
        assert len(lines) == len(space)
        for param, line in zip(space, lines, strict=True):
            assert line.startswith(param.describe()) and param.citation in line
            default = getattr(METHODS.get(name).default_config(), param.name, 1e-3)  # lr: 1e-3
            assert f"; default {default!r} (" in line and "OUTSIDE" not in line


def test_search_param_describe_says_the_range_and_scale() -> None:
    from dml_bench.methods.space import SearchParam

    assert SearchParam("scale", "float", 1.0, 16.0, log=True).describe() == (
        "scale: float in [1, 16], log scale"
    )
    assert SearchParam("k", "int", 2, 8).describe() == "k: int in [2, 8]"
    assert SearchParam("m", "categorical", choices=("a", "b")).describe() == "m: one of a, b"
