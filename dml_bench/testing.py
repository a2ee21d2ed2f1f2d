"""Conformance checks for method plugins (and the built-ins, which must pass them too).

A plugin author calls :func:`check_method` from their own test suite::

    from dml_bench.testing import check_method
    from my_plugin import SPEC

    def test_my_method_conforms():
        check_method(SPEC)

It exercises the contract the training loop relies on (``dml_bench.methods.base``): a well-formed
spec, a frozen config that rejects unknown keys, a batch built as the method's
:class:`~dml_bench.methods.base.BatchNeeds` ask, one forward and backward pass giving a finite
scalar and finite gradients on the embeddings and on every loss parameter (the proxies, which the
loop optimises in their own parameter group), and detection of a batch that breaks the needs.
Every failure is an ``AssertionError`` saying what is wrong and what the loop expects instead.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from dml_bench.config import to_dict
from dml_bench.errors import ConfigError, PluginError
from dml_bench.methods.base import (
    BatchNeeds,
    Method,
    MethodConfig,
    MethodSpec,
    ProxyLoss,
    build_method,
    validate_spec,
)

__all__ = ["check_method", "make_batch_labels"]


def check_method(
    spec: MethodSpec[Any],
    config: MethodConfig | None = None,
    *,
    num_classes: int | None = None,
    embedding_size: int = 16,
    batch_size: int = 32,
    seed: int = 0,
) -> None:
    """Assert that ``spec``, built with ``config`` (default: its default), honours the contract.

    ``num_classes`` defaults to 8, or to as many as a batch of ``m_per_class`` per class needs.
    Deterministic for a given ``seed``; the global torch RNG state is restored afterwards.
    """
    _check_spec_is_valid(spec)
    config = spec.default_config() if config is None else config
    _check_config(spec, config)
    needs = _batch_needs(spec, config, batch_size)
    if num_classes is None:
        num_classes = max(8, batch_size // (needs.m_per_class or batch_size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # proxies are initialised from the global RNG, as in the loop
        generator = torch.Generator().manual_seed(seed)
        labels = make_batch_labels(needs, num_classes, batch_size, generator)
        method = _build(spec, config, num_classes, embedding_size)
        embeddings = torch.randn(batch_size, embedding_size, generator=generator)
        _check_forward_backward(method, embeddings.requires_grad_(), labels)
        if isinstance(method.loss, ProxyLoss):
            _check_proxy_loss(spec.name, method.loss, embeddings.detach(), labels)
    _check_needs_detect_bad_batch(spec.name, needs, batch_size)


def make_batch_labels(
    needs: BatchNeeds, num_classes: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Labels honouring ``needs``: ``m`` of each of ``batch_size // m`` classes, or random."""
    m = needs.m_per_class
    if m is None:
        return torch.randint(num_classes, (batch_size,), generator=generator)
    classes_in_batch = batch_size // m
    if classes_in_batch > num_classes:
        raise AssertionError(
            f"A batch of {batch_size} with m_per_class={m} needs {classes_in_batch} classes but "
            f"check_method was given num_classes={num_classes}; raise num_classes."
        )
    classes = torch.randperm(num_classes, generator=generator)[:classes_in_batch]
    return classes.repeat_interleave(m)


def _check_spec_is_valid(spec: MethodSpec[Any]) -> None:
    try:
        validate_spec(spec)
    except PluginError as exc:
        raise AssertionError(str(exc)) from exc


def _check_config(spec: MethodSpec[Any], config: MethodConfig) -> None:
    name = spec.name
    if not isinstance(config, spec.config_cls):
        raise AssertionError(
            f"{name}: the config is a {type(config).__name__}, not the spec's "
            f"{spec.config_cls.__name__}."
        )
    first = dataclasses.fields(config)[0].name
    try:
        setattr(config, first, getattr(config, first))
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError(f"{name}: the config accepted an assignment; it must be frozen.")
    try:
        spec.make_config({"no_such_key": 1})
    except ConfigError:
        pass
    else:
        raise AssertionError(
            f"{name}: make_config accepted the unknown key 'no_such_key'; unknown keys must raise "
            "ConfigError (use dml_bench.config.build_config)."
        )
    try:
        json.dumps(to_dict(config))
    except TypeError as exc:
        raise AssertionError(
            f"{name}: the config does not serialise to JSON for the run record: {exc}"
        ) from exc


def _batch_needs(spec: MethodSpec[Any], config: MethodConfig, batch_size: int) -> BatchNeeds:
    try:
        needs = spec.batch_needs(config)
        needs.check_batch_size(batch_size, spec.name)
    except ConfigError as exc:
        raise AssertionError(f"{spec.name}: the config's batch needs are invalid: {exc}") from exc
    return needs


def _build(
    spec: MethodSpec[Any], config: MethodConfig, num_classes: int, embedding_size: int
) -> Method:
    try:
        return build_method(spec, config, num_classes, embedding_size)
    except PluginError as exc:
        raise AssertionError(str(exc)) from exc


def _check_forward_backward(method: Method, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    name = method.name
    method.batch_needs.check_labels(labels, name)
    loss = method.compute_loss(embeddings, labels)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise AssertionError(
            f"{name}: the loss must return a scalar tensor, got "
            f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}."
        )
    if not torch.isfinite(loss).all():
        raise AssertionError(f"{name}: the loss is not finite on a random batch: {loss.item()}.")
    if not loss.requires_grad:
        raise AssertionError(f"{name}: the loss does not depend on the embeddings (no grad_fn).")
    loss.backward()
    grad = embeddings.grad
    if grad is None or not bool(grad.abs().sum() > 0):
        raise AssertionError(
            f"{name}: no gradient reaches the embeddings (grad is "
            f"{'None' if grad is None else 'all zero'}); the loss must be differentiable in them."
        )
    if not torch.isfinite(grad).all():
        raise AssertionError(f"{name}: the gradient on the embeddings is not finite.")
    for param_name, param in method.loss.named_parameters():
        if param.grad is None:
            raise AssertionError(
                f"{name}: loss parameter {param_name!r} gets no gradient; the loop optimises every "
                "loss parameter, so each must take part in the loss."
            )
        if not torch.isfinite(param.grad).all():
            raise AssertionError(
                f"{name}: the gradient on loss parameter {param_name!r} is not finite."
            )


def _check_proxy_loss(
    name: str, loss: ProxyLoss, embeddings: torch.Tensor, labels: torch.Tensor
) -> None:
    """The diagnostics (RQ1, RQ3, RQ5) read these; check their shapes and ranges."""
    num_proxies = loss.proxies.shape[0]
    assigned = loss.assign(embeddings, labels)
    if assigned.shape != labels.shape or assigned.dtype != torch.long:
        raise AssertionError(
            f"{name}: assign() must return a LongTensor of shape {tuple(labels.shape)}, got "
            f"{assigned.dtype} of shape {tuple(assigned.shape)}."
        )
    if bool((assigned < 0).any() or (assigned >= num_proxies).any()):
        raise AssertionError(f"{name}: assign() returned indices outside [0, {num_proxies}).")
    norms = loss.normalized_proxies().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise AssertionError(f"{name}: normalized_proxies() are not of unit norm.")
    if not float(loss.scale) > 0:
        raise AssertionError(f"{name}: the proxy loss's scale must be positive, got {loss.scale}.")


def _check_needs_detect_bad_batch(name: str, needs: BatchNeeds, batch_size: int) -> None:
    if not needs.needs_positives:
        return
    all_singletons = torch.arange(batch_size)
    try:
        needs.check_labels(all_singletons, name)
    except RuntimeError:
        return
    raise AssertionError(
        f"{name}: needs positives but BatchNeeds.check_labels accepted a batch of singletons."
    )
