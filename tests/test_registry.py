"""Registry: register, get, sorted names, duplicates, unknown names, lazy entries."""

from __future__ import annotations

from typing import Generic, TypeVar

import pytest

from dml_bench.errors import PluginError, UnknownNameError, UserError
from dml_bench.registry import DuplicateNameError, Origin, Registry

PLUGIN = Origin("some-plugin", "1.2.3")
OTHER = Origin("other-plugin", "0.4")
E = TypeVar("E")


def _reject_non_strings(entry: object) -> None:
    if not isinstance(entry, str):
        raise PluginError(f"entries must be strings, got {type(entry).__name__}.")


class CountingLoader(Generic[E]):
    """A lazy entry's import, counted, so a test can see when (and how often) it happens."""

    def __init__(self, entry: E) -> None:
        self.entry = entry
        self.calls = 0

    def __call__(self) -> E:
        self.calls += 1
        return self.entry


def test_register_and_get() -> None:
    registry: Registry[str] = Registry("widget")
    assert registry.register("b", "entry b") == "entry b"
    assert registry.get("b") == "entry b"
    assert registry.origin("b") == Origin()
    assert registry.origin("b").is_builtin


def test_names_are_sorted_whatever_the_registration_order() -> None:
    registry: Registry[str] = Registry("widget")
    names = ["zeta", "alpha", "mu", "beta"]
    for name in names:
        registry.register(name, name.upper())
    assert registry.names() == sorted(names)
    assert list(registry) == sorted(names)
    assert len(registry) == 4
    assert "mu" in registry and "nu" not in registry


def test_duplicate_names_raise_naming_both_origins() -> None:
    registry: Registry[str] = Registry("widget")
    registry.register("a", "first")
    with pytest.raises(DuplicateNameError) as raised:
        registry.register_lazy("a", CountingLoader("second"), PLUGIN)
    message = str(raised.value)
    assert "'a'" in message and "dml-bench itself (built-in)" in message
    assert "some-plugin 1.2.3" in message
    assert registry.get("a") == "first"


def test_duplicate_between_two_plugins_names_both_distributions() -> None:
    registry: Registry[str] = Registry("widget")
    registry.register_lazy("a", CountingLoader("x"), PLUGIN)
    with pytest.raises(DuplicateNameError, match=r"some-plugin 1\.2\.3.*other-plugin 0\.4"):
        registry.register_lazy("a", CountingLoader("y"), OTHER)


def test_duplicate_error_is_a_user_error() -> None:
    assert issubclass(DuplicateNameError, UserError)


def test_unknown_name_lists_the_valid_names() -> None:
    registry: Registry[str] = Registry("widget")
    for name in ("b", "a"):
        registry.register(name, name)
    registry.register_lazy("c", CountingLoader("c"), PLUGIN)
    with pytest.raises(UnknownNameError) as raised:
        registry.get("nope")
    assert "Valid widgets are: a, b, c." in str(raised.value)
    assert "dml-bench widgets" in str(raised.value)
    with pytest.raises(UnknownNameError):
        registry.origin("nope")


def test_lazy_entry_is_resolved_once_on_first_get_and_validated() -> None:
    registry: Registry[str] = Registry("widget", validate=_reject_non_strings)
    load = CountingLoader("the entry")
    registry.register_lazy("lazy", load, PLUGIN)
    assert registry.names() == ["lazy"]
    assert registry.origin("lazy") == PLUGIN  # metadata only
    assert load.calls == 0 and not registry.is_loaded("lazy")
    assert registry.get("lazy") == "the entry"
    assert registry.get("lazy") == "the entry"
    assert load.calls == 1 and registry.is_loaded("lazy")


def test_invalid_lazy_entry_is_rejected_naming_its_distribution_every_time() -> None:
    registry: Registry[object] = Registry("widget", validate=_reject_non_strings)
    load = CountingLoader(42)
    registry.register_lazy("bad", load, PLUGIN)
    for _ in range(2):  # a failed load is not cached as "unknown name"
        with pytest.raises(PluginError) as raised:
            registry.get("bad")
        assert "some-plugin 1.2.3" in str(raised.value)
        assert "entries must be strings" in str(raised.value)
        assert "DML_BENCH_DISABLE_PLUGINS=1" in str(raised.value)
    assert load.calls == 2
    assert registry.names() == ["bad"]


def test_failing_lazy_load_keeps_raising_its_own_error() -> None:
    def broken() -> str:
        raise PluginError("the plugin some-plugin 1.2.3 failed to import")

    registry: Registry[str] = Registry("widget")
    registry.register_lazy("broken", broken, PLUGIN)
    for _ in range(2):
        with pytest.raises(PluginError, match="failed to import"):
            registry.get("broken")


def test_invalid_builtin_keeps_the_validators_error() -> None:
    registry: Registry[object] = Registry("widget", validate=_reject_non_strings)
    with pytest.raises(PluginError, match="^entries must be strings"):
        registry.register("bad", 42)
    assert "bad" not in registry


def test_loader_runs_once_before_the_first_listing() -> None:
    calls: list[int] = []

    def loader(registry: Registry[str]) -> None:
        calls.append(1)
        registry.register("builtin", "b")
        registry.register_lazy("plugin", CountingLoader("p"), PLUGIN)

    registry: Registry[str] = Registry("widget", loader=loader)
    assert calls == []
    assert registry.names() == ["builtin", "plugin"]
    assert registry.get("plugin") == "p"
    assert "builtin" in registry
    assert calls == [1]


def test_failed_loading_is_not_half_done() -> None:
    """A clash found while loading raises on every call, never a registry missing entries."""

    def loader(registry: Registry[str]) -> None:
        registry.register("a", "a")
        registry.register_lazy("x", CountingLoader("x"), PLUGIN)
        registry.register_lazy("x", CountingLoader("x"), OTHER)

    registry: Registry[str] = Registry("widget", loader=loader)
    for _ in range(2):
        with pytest.raises(DuplicateNameError, match="other-plugin"):
            registry.names()


def test_origin_strings() -> None:
    assert str(Origin()) == "built-in"
    assert str(PLUGIN) == "some-plugin 1.2.3"
    assert str(Origin("no-version")) == "no-version"
    assert PLUGIN.describe() == "the plugin some-plugin 1.2.3"
