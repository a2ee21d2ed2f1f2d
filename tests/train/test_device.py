"""The device policy's memory format, and that it changes nothing beyond float rounding."""

from __future__ import annotations

import pytest
import torch

from dml_bench.models import build_embedder
from dml_bench.train.device import device_policy, prefers_channels_last, to_device
from dml_bench.train.evaluation import inference_network

CPU = torch.device("cpu")


def _trained_looking(trunk: str, channels: int) -> torch.nn.Module:
    """A network with non-trivial batch-norm statistics, so that folding them is exercised."""
    torch.manual_seed(0)
    model = build_embedder(trunk, channels, 16, pretrained=False)
    g = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.rand(shape, generator=g) - 0.5)
            module.running_var.copy_(torch.rand(shape, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=g) + 0.5)
            module.bias.data.copy_(torch.rand(shape, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("trunk", ["small_cnn", "googlenet", "resnet50"])
def test_measured_trunks_use_channels_last_on_cpu(trunk: str) -> None:
    policy = device_policy(CPU, amp=True, trunk=trunk)
    assert policy.channels_last and policy.amp_dtype is None and not policy.grad_scaler


def test_an_unmeasured_trunk_keeps_the_contiguous_format_on_cpu() -> None:
    assert not prefers_channels_last(CPU, "plugin_trunk")
    assert not device_policy(CPU, amp=True).channels_last
    assert prefers_channels_last(torch.device("cuda"), "plugin_trunk")


def test_to_device_lays_out_images_as_the_policy_says() -> None:
    images, labels = torch.rand(4, 3, 8, 8), torch.arange(4)
    last, _ = to_device(images, labels, CPU, device_policy(CPU, True, "small_cnn"))
    plain, _ = to_device(images, labels, CPU, device_policy(CPU, True, "unknown"))
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert plain.is_contiguous()
    assert torch.equal(last, plain)


@pytest.mark.parametrize(
    ("trunk", "shape"), [("small_cnn", (32, 1, 32, 32)), ("googlenet", (2, 3, 64, 64))]
)
def test_channels_last_changes_the_embedding_by_rounding_only(
    trunk: str, shape: tuple[int, ...]
) -> None:
    model = _trained_looking(trunk, shape[1])
    images = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        contiguous = model(images)
        model = model.to(memory_format=torch.channels_last)
        last = model(images.contiguous(memory_format=torch.channels_last))
    assert model.trunk_name == trunk
    torch.testing.assert_close(last, contiguous, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("trunk", ["small_cnn", "resnet50"])
def test_folding_batch_norm_for_inference_changes_the_embedding_by_rounding_only(
    trunk: str,
) -> None:
    channels = 1 if trunk == "small_cnn" else 3
    model = _trained_looking(trunk, channels).to(memory_format=torch.channels_last)
    policy = device_policy(CPU, True, trunk)
    network = inference_network(model, policy)
    batch_norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not batch_norms  # every conv-BN pair was folded
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # a copy
    images = torch.rand(4, channels, 32, 32, generator=torch.Generator().manual_seed(3))
    images = images.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(network(images), model(images), rtol=1e-4, atol=1e-5)


def test_a_network_fx_cannot_trace_is_embedded_unfused() -> None:
    class Untraceable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.bn = torch.nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: symbolic tracing fails
                return self.bn(self.conv(x))
            return x

    model = Untraceable().eval()
    assert inference_network(model, device_policy(CPU, True)) is model
