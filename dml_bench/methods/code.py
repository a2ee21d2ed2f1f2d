"""What identifies a method's code: its distribution and version, and a hash of its source.

A run's result depends on the code of its loss as much as on its config: an edited plugin loss
installed in editable mode keeps its version, so the version alone cannot tell the old code from
the new. :func:`code_identity` hashes the source of the modules that define the method (those of
its ``build_loss``, ``build_miner`` and ``config_cls``), read as bytes with line endings
normalised, so the hash is the same in every process and on every machine that has the same
source, wherever it is installed. Helper modules a method imports are not hashed; a change there
shows only through the distribution's version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Hex digits of the source hash kept in records and run ids.
HASH_LENGTH = 16


@dataclass(frozen=True)
class CodeIdentity:
    """``distribution`` and ``version`` as the registry's metadata gives them; ``modules`` the
    hashed modules (sorted); ``source_hash`` the SHA-256 prefix of their sources ("" when no
    source could be read, e.g. a method defined in an interactive session)."""

    distribution: str
    version: str
    modules: tuple[str, ...]
    source_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "version": self.version,
            "modules": list(self.modules),
            "source_hash": self.source_hash,
        }


def defining_modules(spec: Any) -> tuple[str, ...]:
    """The modules that define the method: those of its loss and miner builders and config."""
    parts = (spec.build_loss, spec.build_miner, spec.config_cls)
    names = {getattr(p, "__module__", None) for p in parts if p is not None}
    return tuple(sorted(n for n in names if isinstance(n, str)))


def module_source(name: str) -> bytes | None:
    """The source bytes of module ``name`` with ``\\r\\n`` read as ``\\n``, or None."""
    module = sys.modules.get(name)
    path: str | None = None
    if module is not None:
        try:
            path = inspect.getsourcefile(module)
        except TypeError:  # a built-in module
            path = None
    if path is None:
        found = importlib.util.find_spec(name) if module is None else None
        path = found.origin if found is not None else None
    if path is None or not Path(path).is_file():
        logger.info("No source file for module %s; its method's code hash leaves it out", name)
        return None
    return Path(path).read_bytes().replace(b"\r\n", b"\n")


def source_hash(modules: tuple[str, ...]) -> str:
    """SHA-256 over each module's name and source; "" when none has a readable source."""
    digest = hashlib.sha256()
    read = False
    for name in modules:
        source = module_source(name)
        if source is None:
            continue
        read = True
        digest.update(name.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()[:HASH_LENGTH] if read else ""


def code_identity(spec: Any, distribution: str, version: str) -> CodeIdentity:
    modules = defining_modules(spec)
    return CodeIdentity(distribution, version, modules, source_hash(modules))


def method_code(method: str) -> CodeIdentity:
    """The code identity of the registered method ``method`` (built-ins carry dml-bench's
    version; a plugin its distribution's)."""
    from dml_bench.methods import METHODS

    origin = METHODS.origin(method)
    version = origin.version or _own_version()
    return code_identity(METHODS.get(method), origin.distribution, version)


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dml-bench")
    except PackageNotFoundError:
        return ""
