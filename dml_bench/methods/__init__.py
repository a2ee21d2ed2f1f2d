"""The method registry: built-in methods plus those of installed plugins.

Built-ins live one per file (``proxy_nca.py`` registers ``"proxy_nca"``), each exposing a module
constant ``SPEC``; they are registered through the same path as plugins, lazily, on first lookup.
"""

from __future__ import annotations

from dml_bench.methods.base import (
    BatchNeeds,
    DeferredProxies,
    DiagnosticBatch,
    Method,
    MethodConfig,
    MethodSpec,
    ProxyLoss,
    build_method,
    validate_spec,
)
from dml_bench.methods.space import NETWORK_LR, SearchParam
from dml_bench.plugins import METHODS_GROUP, registry_loader
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


METHODS: Registry[MethodSpec] = Registry(
    "method",
    loader=registry_loader(__name__, BUILTIN_METHODS, METHODS_GROUP, MethodSpec),
    validate=validate_spec,
)

__all__ = [
    "METHODS",
    "BUILTIN_METHODS",
    "DEFAULT_METHODS",
    "BatchNeeds",
    "DiagnosticBatch",
    "Method",
    "MethodConfig",
    "MethodSpec",
    "NETWORK_LR",
    "DeferredProxies",
    "ProxyLoss",
    "SearchParam",
    "build_method",
]
