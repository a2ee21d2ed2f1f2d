from __future__ import annotations

import dataclasses

import pytest

from dml_bench.config import build_config, replace_config, to_dict
from dml_bench.errors import ConfigError
from dml_bench.train.config import PRESETS, RunConfig, preset_values


def test_unknown_keys_are_errors_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="'stepz'.*Valid keys are"):
        build_config(RunConfig, {"stepz": 3}, "the run")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("steps", "12", 12),
        ("lr", "0.5", 0.5),
        ("pretrained", "false", False),
        ("data_root", "none", None),
    ],
)
def test_strings_are_converted_to_the_field_type(key: str, value: str, expected: object) -> None:
    assert getattr(build_config(RunConfig, {key: value}, "the run"), key) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": "many"}, "steps must be an integer"),
        ({"steps": 0}, "steps must be a positive"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"optimizer": "adagrad"}, "optimizer must be one of"),
        ({"val_classes": 1.5}, "val_classes"),
        ({"crop": 300, "resize": 256}, "crop"),
    ],
)
def test_bad_values_are_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(RunConfig, values, "the run")


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().steps = 3  # type: ignore[misc]


def test_identity_ignores_execution_fields_only() -> None:
    base = RunConfig()
    assert (
        replace_config(base, {"device": "cpu", "num_workers": 4}, "x").identity() == base.identity()
    )
    assert replace_config(base, {"checkpoint_every": 7}, "x").identity() == base.identity()
    assert replace_config(base, {"lr": 0.01}, "x").identity() != base.identity()
    assert replace_config(base, {"seed": 1}, "x").run_id() != base.run_id()


def test_presets_name_only_real_fields() -> None:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for name, preset in PRESETS.items():
        assert set(preset["run"]) <= fields, name
    with pytest.raises(ConfigError, match="Valid presets are: mlrc, nofuss"):
        preset_values("paper")


def test_to_dict_is_json_ready() -> None:
    data = to_dict(RunConfig(notes=("a",)))
    assert data["notes"] == ["a"] and data["steps"] == RunConfig().steps
