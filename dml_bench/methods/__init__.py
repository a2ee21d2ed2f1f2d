"""The method registry: built-in methods plus those of installed plugins.

Built-ins live one per file (``proxy_nca.py`` registers ``"proxy_nca"``), each exposing a module
constant ``SPEC``; they are registered through the same path as plugins, lazily, on first lookup.
"""

from __future__ import annotations

import importlib

from dml_bench.methods.base import (
    BatchNeeds,
    DiagnosticBatch,
    Method,
    MethodConfig,
    MethodSpec,
    ProxyLoss,
    build_method,
)
from dml_bench.registry import Registry

BUILTIN_METHODS = (
    "proxy_nca",
    "proxy_nca_dynamic",
    "triplet_semihard",
    "lifted_structure",
    "nca",
    "n_pairs",
    "proxy_anchor",
    "proxy_nca_pp",
    "multi_similarity",
    "contrastive",
    "soft_triple",
)

DEFAULT_METHODS = BUILTIN_METHODS[:5]
"""What ``dml-bench run`` trains without ``--methods``: the paper's comparison (Proxy-NCA, static
and dynamic, against triplet semi-hard, lifted structure and NCA), a few minutes on a CPU."""


def _load(registry: Registry[MethodSpec]) -> None:
    for module_name in BUILTIN_METHODS:
        spec = importlib.import_module(f"dml_bench.methods.{module_name}").SPEC
        assert spec.name == module_name, f"{module_name}.py must register {module_name!r}"
        registry.register(spec.name, spec)
    from dml_bench.plugins import load_plugins

    load_plugins("dml_bench.methods", registry, MethodSpec)


def _validate(entry: object) -> None:
    from dml_bench.methods.base import validate_spec

    validate_spec(entry)


METHODS: Registry[MethodSpec] = Registry("method", loader=_load, validate=_validate)

__all__ = [
    "METHODS",
    "BUILTIN_METHODS",
    "DEFAULT_METHODS",
    "BatchNeeds",
    "DiagnosticBatch",
    "Method",
    "MethodConfig",
    "MethodSpec",
    "ProxyLoss",
    "build_method",
]
