"""Device handling: one code path for CPU and GPU.

On CUDA: automatic mixed precision (bf16 where the GPU supports it, else fp16 with a gradient
scaler), channels_last memory format for conv trunks, pinned host memory with non_blocking copies,
and ``cudnn.benchmark``. On CPU the same calls run in fp32 (autocast disabled), which keeps CPU runs
deterministic for a seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from dml_bench.errors import ConfigError


@dataclass(frozen=True)
class DevicePolicy:
    amp_dtype: torch.dtype | None
    grad_scaler: bool
    channels_last: bool
    non_blocking: bool


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name} was asked for, but PyTorch sees no CUDA GPU on this machine. "
                "Use --device cpu (or auto), or install a CUDA build of torch on a GPU machine."
            )
        return torch.device(name)
    raise ConfigError(f"Unknown device {name!r}. Valid values are: auto, cpu, cuda, cuda:N.")


def device_policy(device: torch.device, amp: bool) -> DevicePolicy:
    if device.type != "cuda":
        return DevicePolicy(
            amp_dtype=None, grad_scaler=False, channels_last=False, non_blocking=False
        )
    torch.backends.cudnn.benchmark = True
    dtype = None
    if amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DevicePolicy(
        amp_dtype=dtype,
        grad_scaler=dtype == torch.float16,
        channels_last=True,
        non_blocking=True,
    )


@contextlib.contextmanager
def autocast(device: torch.device, policy: DevicePolicy) -> Iterator[None]:
    if policy.amp_dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=policy.amp_dtype):
        yield


def to_device(
    images: torch.Tensor, labels: torch.Tensor, device: torch.device, policy: DevicePolicy
) -> tuple[torch.Tensor, torch.Tensor]:
    fmt = (
        torch.channels_last if policy.channels_last and images.dim() == 4 else torch.preserve_format
    )
    images = images.to(device, non_blocking=policy.non_blocking, memory_format=fmt)
    labels = labels.to(device, non_blocking=policy.non_blocking)
    return images, labels
