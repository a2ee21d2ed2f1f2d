"""A small typed registry, one per kind of component (methods, datasets, trunks).

Modelled on timm's ``register_model``: a decorator on a plain object, a sorted ``names()``, an
error listing the valid names for an unknown one, and duplicate names rejected. Third parties do not
edit a registry's contents; they declare entry points (see :mod:`dml_bench.plugins`), which the
registry loads lazily the first time a name is looked up or listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from dml_bench.errors import UnknownNameError, UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a registered entry came from: ``built-in`` or a distribution and its version."""

    distribution: str = "built-in"
    version: str = ""

    def __str__(self) -> str:
        return self.distribution if not self.version else f"{self.distribution} {self.version}"


class DuplicateNameError(UserError):
    """Two entries claim the same name."""


class Registry(Generic[T]):
    """Name -> entry for one kind of component.

    ``loader`` is called once, before the first lookup, to add entries declared elsewhere (the
    plugin entry points); built-ins register at import time of their own module.
    """

    def __init__(
        self,
        kind: str,
        loader: Callable[[Registry[T]], None] | None = None,
        validate: Callable[[object], None] | None = None,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, Callable[[], T]] = {}
        self._origins: dict[str, Origin] = {}
        self._loader = loader
        self._loaded = loader is None
        self._validate = validate

    def register(self, name: str, entry: T, origin: Origin | None = None) -> T:
        self._claim(name, origin or Origin())
        if self._validate is not None:
            self._validate(entry)
        self._entries[name] = entry
        return entry

    def register_lazy(self, name: str, load: Callable[[], T], origin: Origin) -> None:
        """Reserve ``name`` now (from metadata alone); ``load`` imports the entry on first use."""
        self._claim(name, origin)
        self._lazy[name] = load

    def _claim(self, name: str, origin: Origin) -> None:
        if name in self._origins:
            raise DuplicateNameError(
                f"The {self.kind} name {name!r} is registered twice: by {self._origins[name]} and by "
                f"{origin}. Rename one of them, or uninstall (or disable with "
                "DML_BENCH_DISABLE_PLUGINS=1) the plugin that should not provide it."
            )
        self._origins[name] = origin

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader(self)

    def get(self, name: str) -> T:
        self._ensure_loaded()
        if name in self._lazy:
            entry = self._lazy.pop(name)()
            if self._validate is not None:
                self._validate(entry)
            self._entries[name] = entry
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}. Valid {self.kind}s are: {valid}. "
                f"Run `dml-bench {self.kind}s` to list them with descriptions."
            ) from None

    def origin(self, name: str) -> Origin:
        self.get(name)
        return self._origins[name]

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._origins)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._origins

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
