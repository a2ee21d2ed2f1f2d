"""Command-line options and config files become an ExperimentRequest, in the right precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dml_bench.cli.run_options import (
    parse_setting,
    read_config_file,
    request_from_options,
)
from dml_bench.errors import ConfigError, UnknownNameError, UserError
from dml_bench.methods import BUILTIN_METHODS, DEFAULT_METHODS


def options(**given: Any) -> dict[str, Any]:
    return {"settings": (), **given}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy_nca.scale=3,9", ("proxy_nca", "scale", ["3", "9"])),
        ("lr=0.1", (None, "lr", ["0.1"])),
        ("dataset.max_classes= 10 ", ("dataset", "max_classes", ["10"])),
        ("notes=", (None, "notes", [""])),
    ],
)
def test_parse_setting(text: str, expected: tuple[Any, ...]) -> None:
    assert parse_setting(text) == expected


@pytest.mark.parametrize("text", ["noequals", "=3"])
def test_settings_without_a_key_and_value_are_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_setting(text)


def test_defaults_are_the_papers_five_methods_on_hershey_seed_0() -> None:
    request = request_from_options(options())
    assert request.methods == tuple(DEFAULT_METHODS) and request.dataset == "hershey"
    assert set(DEFAULT_METHODS) < set(BUILTIN_METHODS) and len(DEFAULT_METHODS) == 5
    assert request.seeds == (0,) and request.preset is None and dict(request.run_params) == {}


def test_flags_override_the_file_which_overrides_nothing_else(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(
        '[run]\nmethods = ["nca", "proxy_nca"]\nseeds = [1, 2]\nsteps = 50\nlr = 0.5\n'
        "[methods.nca]\nscale = [4.0, 8.0]\n[dataset]\nmax_classes = 10\n"
    )
    request = request_from_options(
        options(
            config_file=file, steps=7, settings=("proxy_nca.scale=3,9", "dataset.max_classes=12")
        )
    )
    assert request.methods == ("nca", "proxy_nca") and request.seeds == (1, 2)
    assert request.run_params == {"steps": 7, "lr": 0.5}
    assert request.method_params == {
        "nca": {"scale": [4.0, 8.0]},
        "proxy_nca": {"scale": ["3", "9"]},
    }
    assert request.dataset_params == {"max_classes": "12"}


def test_data_root_is_passed_as_a_string(tmp_path: Path) -> None:
    request = request_from_options(options(data_root=tmp_path))
    assert request.run_params == {"data_root": str(tmp_path)}


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"methods": ""}, "--methods is empty"),
        ({"methods": "nca,nca"}, "twice"),
        ({"seeds": "1,x"}, "--seeds 0,1,2"),
        ({"seeds": "3,3"}, "twice"),
        ({"dataset": " "}, "--dataset is empty"),
        ({"settings": ("seed=3",)}, "use --seeds"),
        ({"settings": ("variant=x",)}, "filled in by dml-bench"),
        ({"settings": ("lr=1,2",)}, "takes one value"),
        ({"settings": ("dataset.max_classes=1,2",)}, "one value"),
        ({"methods": "proxy_nca", "settings": ("nca.margin=1",)}, "Add it to --methods"),
    ],
)
def test_bad_options_name_the_flag(given: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        request_from_options(options(**given))


def test_unknown_methods_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="Valid methods"):
        request_from_options(options(methods="nosuch"))
    with pytest.raises(UnknownNameError, match="nosuch"):
        request_from_options(options(settings=("nosuch.x=1",)))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[run\n", "not valid TOML"),
        ("[other]\nx = 1\n", "unknown top-level key(s) 'other'"),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, named: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        read_config_file(file)


def test_a_missing_config_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Cannot read the config file"):
        read_config_file(tmp_path / "missing.toml")
