"""Frozen dataclass configs: type conversion from strings, unknown keys, hashing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from dml_bench.config import build_config, config_hash, field_names, replace_config, to_dict
from dml_bench.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    k: int = 1


@dataclass(frozen=True)
class Example:
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"
    mode: Literal["fast", "slow"] = "fast"
    limit: int | None = None
    items: tuple[int, ...] = ()
    inner: Inner = field(default_factory=Inner)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("n", "7", 7),
        ("n", 3.0, 3),
        ("x", "1e-3", 1e-3),
        ("x", 2, 2.0),
        ("flag", "yes", True),
        ("flag", "OFF", False),
        ("flag", 1, True),
        ("mode", "slow", "slow"),
        ("limit", "none", None),
        ("limit", "", None),
        ("limit", "4", 4),
        ("items", "1, 2,3", (1, 2, 3)),
        ("items", [4, "5"], (4, 5)),
    ],
)
def test_values_are_converted_to_the_declared_type(
    key: str, value: object, expected: object
) -> None:
    config = build_config(Example, {key: value}, "the example")
    assert getattr(config, key) == expected
    assert type(getattr(config, key)) is type(expected)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n": "2.5"}, "the example: n must be an integer, got '2.5'"),
        ({"n": True}, "must be an integer"),
        ({"x": "nan"}, "must be a finite number"),
        ({"x": "abc"}, "must be a number"),
        ({"flag": "maybe"}, "must be true or false"),
        ({"name": 3}, "must be a string"),
        ({"mode": "medium"}, "must be one of 'fast', 'slow'"),
        ({"limit": "x"}, "limit"),
        ({"nn": 1, "zz": 2}, "Unknown keys 'nn', 'zz' for the example. Valid keys are: n, x"),
    ],
)
def test_bad_values_and_unknown_keys_name_the_problem(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(Example, values, "the example")
    assert message in str(info.value)


def test_replace_config_checks_like_build_config_and_keeps_the_rest() -> None:
    base = build_config(Example, {"n": 2, "name": "b"}, "e")
    changed = replace_config(base, {"x": "0.25"}, "e")
    assert (changed.n, changed.name, changed.x) == (2, "b", 0.25)
    with pytest.raises(ConfigError, match="'nope'"):
        replace_config(base, {"nope": 1}, "e")


def test_to_dict_is_json_ready_and_nested() -> None:
    data = to_dict(Example(items=(1, 2)))
    assert data["items"] == [1, 2] and data["inner"] == {"k": 1}
    assert json.loads(json.dumps(data)) == data
    assert field_names(Example) == [f.name for f in dataclasses.fields(Example)]


def test_config_hash_is_a_short_sha256_of_the_sorted_json() -> None:
    data = {"b": 1, "a": [1, 2]}
    blob = json.dumps({"a": [1, 2], "b": 1}, sort_keys=True, separators=(",", ":"))
    assert config_hash(data) == hashlib.sha256(blob.encode()).hexdigest()[:10]
    assert config_hash({"a": [1, 2], "b": 1}) == config_hash(data)  # key order does not matter
    assert config_hash(data) != config_hash({"b": 2, "a": [1, 2]})
    assert len(config_hash(data, length=6)) == 6
