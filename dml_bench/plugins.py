"""Discovery of third-party methods and datasets through Python entry points.

A plugin distribution declares, in its own ``pyproject.toml``::

    [project.entry-points."dml_bench.methods"]
    circle = "my_plugin.methods:SPEC"

The entry point's name is the registered name; its object is a :class:`~dml_bench.methods.MethodSpec`
(or a :class:`~dml_bench.data.DatasetSpec` for ``dml_bench.datasets``). Discovery reads metadata
only; the plugin module is imported the first time its name is used, and the object is validated.
``DML_BENCH_DISABLE_PLUGINS=1`` switches discovery off (the Python Packaging Guide's
"Creating and discovering plugins", pytest's ``pytest11`` group).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from dml_bench.errors import PluginError
from dml_bench.registry import BUILTIN, Origin, Registry

logger = logging.getLogger(__name__)

DISABLE_ENV = "DML_BENCH_DISABLE_PLUGINS"
METHODS_GROUP = "dml_bench.methods"
DATASETS_GROUP = "dml_bench.datasets"


def plugins_disabled() -> bool:
    """``DML_BENCH_DISABLE_PLUGINS`` set to 1/true/yes/on: the way out when a plugin is broken."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def entry_point_origin(ep: EntryPoint) -> Origin:
    """The distribution (and version) that declares ``ep``, read from its metadata only."""
    dist = ep.dist
    if dist is None:
        return Origin(distribution=f"(unknown distribution of {ep.value})")
    return Origin(distribution=dist.metadata["Name"] or dist.name, version=dist.version)


def _loader(ep: EntryPoint, origin: Origin, expected: type, group: str) -> Callable[[], Any]:
    """The deferred import of one entry point, turning every failure into one PluginError that
    names the distribution and the way to switch plugins off (no third-party traceback)."""

    def load() -> Any:
        try:
            obj = ep.load()
        except Exception as exc:  # any import failure of third-party code
            raise PluginError(
                f"The plugin {origin} failed to load entry point {ep.name!r} = {ep.value!r} in group "
                f"{group!r}: {type(exc).__name__}: {exc}. Fix or uninstall that distribution, or set "
                f"{DISABLE_ENV}=1 to run without plugins."
            ) from exc
        if not isinstance(obj, expected):
            raise PluginError(
                f"The plugin {origin} registers {ep.name!r} in group {group!r} as a "
                f"{type(obj).__name__}, but dml-bench expects a {expected.__name__}. Fix or "
                f"uninstall that distribution, or set {DISABLE_ENV}=1 to run without plugins."
            )
        declared_name = getattr(obj, "name", ep.name)
        if declared_name != ep.name:
            raise PluginError(
                f"The plugin {origin} declares entry point {ep.name!r} but its object is named "
                f"{declared_name!r}; the two must match. Fix that distribution, or set "
                f"{DISABLE_ENV}=1."
            )
        return obj

    return load


def load_plugins(group: str, registry: Registry[Any], expected: type) -> None:
    """Reserve every entry point of ``group`` in ``registry``; objects load on first use.

    Only metadata is read here (``entry_points`` scans the installed distributions' dist-info),
    so listing names never imports third-party code; a name clash is found here, before anything
    is imported, and names both distributions (:class:`~dml_bench.registry.DuplicateNameError`).
    """
    if plugins_disabled():
        logger.info("plugins disabled by %s", DISABLE_ENV)
        return
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        origin = entry_point_origin(ep)
        registry.register_lazy(ep.name, _loader(ep, origin, expected, group), origin)


def registry_loader(
    package: str, modules: Sequence[str], group: str, expected: type
) -> Callable[[Registry[Any]], None]:
    """The one loader of a registry: built-ins first, then the plugins of ``group``.

    Each built-in lives in ``package.<name>`` and exposes ``SPEC``, registered under its module's
    name (one file per component, names that match), through the same validation as plugins.
    """

    def load(registry: Registry[Any]) -> None:
        for module_name in modules:
            spec = importlib.import_module(f"{package}.{module_name}").SPEC
            if not isinstance(spec, expected) or getattr(spec, "name", None) != module_name:
                raise PluginError(
                    f"{package}.{module_name} must define SPEC, a {expected.__name__} named "
                    f"{module_name!r} ({BUILTIN} components are named after their module)."
                )
            registry.register(module_name, spec)
        load_plugins(group, registry, expected)

    return load
