"""Frozen dataclass configs that reject unknown keys.

Every knob that changes a result (softmax scale, proxy learning rate, margin, sampler, ...) is an
explicit field, so a run's record says exactly what ran. Values arrive from the CLI as strings
(``--set proxy_nca.scale=8``) or from a TOML config file; :func:`build_config` converts them to the
field's declared type and names the offending key when it cannot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from dml_bench.errors import ConfigError

C = TypeVar("C")

_NONE_STRINGS = {"none", "null", ""}
_TRUE_STRINGS = {"1", "true", "yes", "on"}
_FALSE_STRINGS = {"0", "false", "no", "off"}


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _coerce_scalar(value: Any, target: Any, where: str) -> Any:
    if target is Any:
        return value
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE_STRINGS | _FALSE_STRINGS:
            return value.lower() in _TRUE_STRINGS
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if target is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be an integer, got {value!r}.")
    if target is float:
        number = _to_float(value)
        if number is None:
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {value!r}.")
        return number
    if target is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}.")
    if typing.get_origin(target) is typing.Literal:
        allowed = typing.get_args(target)
        if value in allowed:
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    if typing.get_origin(target) is tuple:
        args = typing.get_args(target)
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if args else Any
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, inner, where) for v in items)
    return value


def _coerce(value: Any, target: Any, where: str) -> Any:
    origin = typing.get_origin(target)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(target)
        if type(None) in args:
            if value is None or (isinstance(value, str) and value.lower() in _NONE_STRINGS):
                return None
            args = tuple(a for a in args if a is not type(None))
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}.")
    return _coerce_scalar(value, target, where)


def build_config(cls: type[C], values: Mapping[str, Any], where: str) -> C:
    """Build the frozen dataclass ``cls`` from ``values``; unknown keys and bad types are errors.

    ``where`` names the config in messages (e.g. ``"method 'proxy_nca'"``).
    """
    names = field_names(cls)
    unknown = sorted(set(values) - set(names))
    if unknown:
        valid = (
            f"Valid keys are: {', '.join(names)}." if names else f"{where} has no settable keys."
        )
        raise ConfigError(
            f"Unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
            f"{where}. {valid}"
        )
    hints = _resolved_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}: {k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"Invalid value for {where}: {exc}") from None


def replace_config(config: C, values: Mapping[str, Any], where: str) -> C:
    """``dataclasses.replace`` with the same key and type checks as :func:`build_config`."""
    merged = {**to_dict(config), **values}
    return build_config(type(config), merged, where)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass config."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def config_hash(data: Mapping[str, Any], length: int = 10) -> str:
    """A stable short hash of a JSON-ready mapping (keys sorted)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def config_class_problems(cls: Any, base: type) -> list[str]:
    """What keeps ``cls`` from being a registered component's config class, as phrases.

    One standard for methods and datasets alike (both validators use it): a frozen dataclass
    subclassing ``base`` whose every field has a default, so ``cls()`` is the default config.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return ["config_cls must be a dataclass type"]
    if not issubclass(cls, base):
        return [f"config_cls must subclass {base.__module__}.{base.__qualname__}"]
    if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        return ["config_cls must be a frozen dataclass"]
    try:
        cls()
    except TypeError:
        return ["every config_cls field needs a default"]
    return []
