"""Trunks: the feature extractors a run can train, as registry entries.

``small_cnn`` is sized for the embedded glyph dataset on a laptop CPU. ``googlenet`` (Inception v1
with batch norm, torchvision's closest model to the paper's BN-Inception, Sec. 5 of the paper) and
``resnet50`` serve the real datasets, with ImageNet weights by default.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from torch import nn

from dml_bench.errors import UserError
from dml_bench.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrunkSpec:
    """``build(in_channels, pretrained) -> (module, feature_dim)``; the module maps images to
    ``(batch, feature_dim)`` features. ``weights_mean_std``: the normalisation its pretrained
    weights expect (``None``: inputs are used as the dataset gives them)."""

    name: str
    description: str
    build: Callable[[int, bool], tuple[nn.Module, int]]
    weights_mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None = None


TRUNKS: Registry[TrunkSpec] = Registry("trunk")

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def build_small_cnn(in_channels: int, pretrained: bool) -> tuple[nn.Module, int]:
    """Four conv blocks (16-32-64-128 channels, each conv-BN-ReLU-maxpool) and global average
    pooling: ~0.1M parameters and ~4M multiply-adds per 32 px glyph, so that the default run of
    all five methods trains and evaluates in minutes on a 2-core CPU."""
    if pretrained:
        logger.debug("small_cnn has no pretrained weights; training from scratch")
    widths = (16, 32, 64, 128)
    layers: list[nn.Module] = []
    c = in_channels
    for w in widths:
        layers.append(_conv_block(c, w))
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), widths[-1]


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """Accept greyscale input in an RGB network by summing the pretrained filters over colour."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(
            conv.weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels
        )
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return new


def imagenet_state_dict(weights: Any, name: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of ``weights`` (a torchvision ``WeightsEnum`` member), downloaded
    into torch's hub cache on first use and loaded with ``weights_only=True``.

    torchvision's own loading unpickles the cached file with ``weights_only=False``, and checks
    its hash only when it downloads it: a file planted in ``~/.cache/torch/hub/checkpoints`` would
    run its code. Here a file that needs more than tensors is refused instead.
    """
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlsplit(weights.url).path).name
    try:
        state: dict[str, torch.Tensor] = weights.get_state_dict(
            progress=True, check_hash=True, weights_only=True
        )
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"The ImageNet weights of trunk {name!r} in {path} were not loaded: the file needs "
            f"more than tensors to load ({str(exc).splitlines()[0]}), and unpickling it could run "
            "code that came with it. torchvision's weights hold tensors only; delete the file so "
            "that it is downloaded again, or train from scratch with --no-pretrained."
        ) from None
    except (OSError, RuntimeError) as exc:
        raise UserError(
            f"Could not load the ImageNet weights of trunk {name!r} ({type(exc).__name__}: {exc}). "
            "torchvision downloads them into ~/.cache/torch on first use, which needs internet; "
            "download them once on a connected machine, or train from scratch with --no-pretrained."
        ) from None
    return state


def build_googlenet(in_channels: int, pretrained: bool) -> tuple[nn.Module, int]:
    from torchvision.models import GoogLeNet_Weights, googlenet

    if pretrained:
        # The layout torchvision builds for these weights: auxiliary heads present to load them,
        # dropped after (what ``googlenet(weights=...)`` does with aux_logits left at False).
        model: Any = googlenet(weights=None, aux_logits=True, init_weights=False)
        model.load_state_dict(imagenet_state_dict(GoogLeNet_Weights.IMAGENET1K_V1, "googlenet"))
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    else:
        model = googlenet(weights=None, aux_logits=False, init_weights=True)
    model.transform_input = False  # normalisation is done by the data transforms
    model.conv1.conv = _adapt_first_conv(model.conv1.conv, in_channels)
    model.fc = nn.Identity()
    model.dropout = nn.Identity()
    return model, 1024


def build_resnet50(in_channels: int, pretrained: bool) -> tuple[nn.Module, int]:
    from torchvision.models import ResNet50_Weights, resnet50

    model: Any = resnet50(weights=None)
    if pretrained:
        model.load_state_dict(imagenet_state_dict(ResNet50_Weights.IMAGENET1K_V2, "resnet50"))
    model.conv1 = _adapt_first_conv(model.conv1, in_channels)
    model.fc = nn.Identity()
    return model, 2048


TRUNKS.register(
    "small_cnn",
    TrunkSpec(
        "small_cnn", "3-block CNN for the embedded glyph dataset (CPU-friendly)", build_small_cnn
    ),
)
TRUNKS.register(
    "googlenet",
    TrunkSpec(
        "googlenet",
        "Inception v1 with batch norm (torchvision), the paper's trunk family; ImageNet weights",
        build_googlenet,
        IMAGENET_MEAN_STD,
    ),
)
TRUNKS.register(
    "resnet50",
    TrunkSpec(
        "resnet50", "ResNet-50 (torchvision); ImageNet weights", build_resnet50, IMAGENET_MEAN_STD
    ),
)
