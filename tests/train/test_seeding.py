"""Randomness flows from generators seeded by the run, not from the order objects are built."""

from __future__ import annotations

import torch

from dml_bench.methods.proxy_nca_dynamic import DynamicProxyNCALoss
from dml_bench.train.config import RunConfig
from dml_bench.train.seeding import run_generator, seeded_global_rng


def test_run_generators_are_a_function_of_seed_and_purpose() -> None:
    def draw(seed: int, purpose: str) -> torch.Tensor:
        return torch.randn(5, generator=run_generator(seed, purpose))

    assert torch.equal(draw(0, "proxies"), draw(0, "proxies"))
    assert not torch.equal(draw(0, "proxies"), draw(1, "proxies"))
    assert not torch.equal(draw(0, "proxies"), draw(0, "other"))


def test_seeded_global_rng_draws_from_the_seed_and_leaves_the_stream_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_global_rng(7):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected_next)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(3))


def _proxies(method: str) -> torch.Tensor:
    from dml_bench.methods import METHODS, build_method

    spec = METHODS.get(method)
    config = RunConfig(method=method, method_config=spec.default_config(), seed=3)
    built = build_method(
        spec, config.method_config, 10, 8, generator=run_generator(config.seed, "proxies")
    )
    assert built.proxy_loss is not None
    return built.proxy_loss.proxies.detach().clone()


def test_proxies_do_not_depend_on_earlier_global_draws() -> None:
    torch.manual_seed(0)
    first = _proxies("proxy_nca")
    torch.rand(1000)  # something else drew from the global RNG first
    assert torch.equal(_proxies("proxy_nca"), first)
    expected = torch.randn(first.shape, generator=run_generator(3, "proxies"))
    assert torch.equal(first, expected)


def test_dynamic_first_batch_init_draws_from_the_losss_generator() -> None:
    from dml_bench.methods import METHODS, build_method

    spec = METHODS.get("proxy_nca_dynamic")

    def initialised(global_seed: int) -> torch.Tensor:
        loss = build_method(
            spec, spec.default_config(), 10, 8, generator=run_generator(3, "proxies")
        ).loss
        assert isinstance(loss, DynamicProxyNCALoss)
        torch.manual_seed(global_seed)
        loss.initialise_from(torch.randn(16, 8, generator=torch.Generator().manual_seed(1)))
        return loss.proxies.detach().clone()

    assert torch.equal(initialised(0), initialised(99))
