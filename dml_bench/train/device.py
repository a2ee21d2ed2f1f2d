"""Device handling: one code path for CPU and GPU.

On CUDA: automatic mixed precision (bf16 where the GPU supports it, else fp16 with a gradient
scaler), channels_last memory format for conv trunks, pinned host memory with non_blocking copies,
and ``cudnn.benchmark``. On CPU the same calls run in fp32 (autocast disabled), which keeps CPU runs
deterministic for a seed.

Memory format. channels_last (NHWC) changes how the network's weights and a batch's pixels are
laid out, not what is computed: the two formats differ by float rounding only (tested). Which one
is faster depends on the device and the trunk, so it is chosen from measurements
(``benchmarks/memory_format.py``), per trunk, for training steps and for embedding alike. On CPU
(2-core AMD EPYC, torch 2.14.1, oneDNN; ms per call, contiguous / channels_last, 1 thread):

=========  ============================  ============================
trunk      training step                 embedding a batch
=========  ============================  ============================
small_cnn  126 / 75 (1.69x), batch 64    601 / 329 (1.83x), batch 512
googlenet  4146 / 3106 (1.33x), batch 8  1612 / 988 (1.63x), batch 8
resnet50   11815 / 11521 (1.03x), b. 8   3304 / 2759 (1.20x), batch 8
=========  ============================  ============================

With 2 threads: small_cnn 1.50x / 1.51x, googlenet 1.54x / 1.53x. channels_last is never slower,
so every measured trunk uses it on CPU for both; a trunk not in the table (a plugin's) keeps the
contiguous format on CPU until measured. On CUDA every conv trunk uses channels_last (tensor-core
convolutions want NHWC). A CPU run stays bit-identical from run to run in either format.
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
    channels_last: bool  # weights and 4-D inputs in channels_last, for training and embedding
    non_blocking: bool


#: Trunks measured faster in channels_last on CPU, for training and embedding (table above).
CPU_CHANNELS_LAST_TRUNKS = frozenset({"small_cnn", "googlenet", "resnet50"})


def prefers_channels_last(device: torch.device, trunk: str) -> bool:
    """The memory format measured fastest for ``trunk`` on ``device`` (see the module docstring)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and trunk in CPU_CHANNELS_LAST_TRUNKS


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


def device_policy(device: torch.device, amp: bool, trunk: str = "") -> DevicePolicy:
    """How to run ``trunk`` (a registry name; ``""``: unknown) on ``device``."""
    if device.type != "cuda":
        return DevicePolicy(
            amp_dtype=None,
            grad_scaler=False,
            channels_last=prefers_channels_last(device, trunk),
            non_blocking=False,
        )
    torch.backends.cudnn.benchmark = True
    dtype = None
    if amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DevicePolicy(
        amp_dtype=dtype,
        grad_scaler=dtype == torch.float16,
        channels_last=prefers_channels_last(device, trunk),
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
