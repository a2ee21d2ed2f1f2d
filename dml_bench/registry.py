"""A small typed registry, one per kind of component (methods, datasets, trunks).

Modelled on timm's ``register_model``: a decorator on a plain object, a sorted ``names()``, an
error listing the valid names for an unknown one, and duplicate names rejected. Third parties do not
edit a registry's contents; they declare entry points (see :mod:`dml_bench.plugins`), which the
registry loads lazily: listing names reads metadata only, and a plugin's module is imported the
first time its entry is looked up.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from dml_bench.errors import PluginError, UnknownNameError, UserError

T = TypeVar("T")

BUILTIN = "built-in"


@dataclass(frozen=True)
class Origin:
    """Where a registered entry came from: ``built-in`` or a distribution and its version.

    Run records store it (``method_origin`` in config.json and env.json), so a result produced by
    a plugin says which release of which third-party package computed it.
    """

    distribution: str = BUILTIN
    version: str = ""

    @property
    def is_builtin(self) -> bool:
        return self.distribution == BUILTIN

    def describe(self) -> str:
        """A phrase for error messages that names the distribution even for built-ins."""
        return "dml-bench itself (built-in)" if self.is_builtin else f"the plugin {self}"

    def __str__(self) -> str:
        return self.distribution if not self.version else f"{self.distribution} {self.version}"


class DuplicateNameError(UserError):
    """Two entries claim the same name."""


class Registry(Generic[T]):
    """Name -> entry for one kind of component.

    ``loader`` is called once, before the first lookup or listing, to add the built-ins and the
    entries declared elsewhere (the plugin entry points, reserved by name through
    :meth:`register_lazy`). Loading is all or nothing: if the loader raises (e.g. two plugins claim
    one name), the registry is left empty-handed and the next call raises the same error again
    instead of silently serving a partial registry. ``validate`` checks every entry, built-in or
    lazily loaded, before it is served.
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
        self._loading = False
        self._validate = validate

    def register(self, name: str, entry: T, origin: Origin | None = None) -> T:
        origin = origin or Origin()
        self._check_valid(name, entry, origin)
        self._claim(name, origin)
        self._entries[name] = entry
        return entry

    def register_lazy(self, name: str, load: Callable[[], T], origin: Origin) -> None:
        """Reserve ``name`` now (from metadata alone); ``load`` imports the entry on first use."""
        self._claim(name, origin)
        self._lazy[name] = load

    def _claim(self, name: str, origin: Origin) -> None:
        if name in self._origins:
            first = self._origins[name]
            raise DuplicateNameError(
                f"The {self.kind} name {name!r} is registered twice: by {first.describe()} and by "
                f"{origin.describe()}. Rename one of them, or uninstall (or disable with "
                "DML_BENCH_DISABLE_PLUGINS=1) the plugin that should not provide it."
            )
        self._origins[name] = origin

    def _check_valid(self, name: str, entry: T, origin: Origin) -> None:
        if self._validate is None:
            return
        try:
            self._validate(entry)
        except UserError as exc:
            if origin.is_builtin:
                raise
            raise PluginError(
                f"{origin.describe().capitalize()} provides an invalid {self.kind} {name!r}: "
                f"{exc} Fix or uninstall that distribution, or set DML_BENCH_DISABLE_PLUGINS=1 to "
                "run without plugins."
            ) from exc

    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        assert self._loader is not None
        snapshot = (dict(self._entries), dict(self._lazy), dict(self._origins))
        self._loading = True
        try:
            self._loader(self)
        except BaseException:
            self._entries, self._lazy, self._origins = snapshot
            raise
        finally:
            self._loading = False
        self._loaded = True

    def get(self, name: str) -> T:
        self._ensure_loaded()
        if name in self._lazy:
            self._resolve(name)
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(self.names()) or "(none)"
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{hint} Valid {self.kind}s are: {valid}. "
                f"Run `dml-bench {self.kind}s` to list them with descriptions."
            ) from None

    def _resolve(self, name: str) -> None:
        """Import a lazy entry once; it stays lazy (and raises again) if loading fails."""
        entry = self._lazy[name]()
        self._check_valid(name, entry, self._origins[name])
        self._entries[name] = entry
        del self._lazy[name]

    def origin(self, name: str) -> Origin:
        """Where ``name`` comes from, read from metadata: a plugin is not imported for this."""
        self._ensure_loaded()
        if name not in self._origins:
            self.get(name)  # raises the error listing the valid names
        return self._origins[name]

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s entry has been imported (``False`` for a not-yet-used plugin)."""
        return name in self._entries

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
