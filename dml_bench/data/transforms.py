"""Image transforms of the paper's training set-up (docs/protocol.md, "Paper training set-up").

Movshovitz-Attias et al. (2017), Sec. 5: images are resized to 256 x 256, a random 227 x 227 crop
and a horizontal flip are taken for training, and the centre crop at test time. We resize the
*shorter side* to ``resize`` (torchvision's convention, keeping the aspect ratio) rather than
squashing to a square; this is what most reproductions do and it changes little for these
datasets. Normalisation uses the ImageNet statistics that the pretrained trunks expect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision.transforms import v2

from dml_bench.errors import ConfigError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def photo_transforms(
    train: bool,
    resize: int = 256,
    crop: int = 227,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Any], torch.Tensor]:
    """PIL RGB image -> normalised float32 tensor ``3 x crop x crop``.

    ``train=True``: resize, random crop, random horizontal flip; ``train=False``: resize and
    centre crop, so evaluation is deterministic.
    """
    if crop > resize:
        raise ConfigError(
            f"The crop size ({crop}) must not exceed the resize size ({resize}); "
            "pick crop <= resize (the paper uses resize 256, crop 227)."
        )
    if len(mean) != len(std):
        raise ConfigError(
            f"mean and std must have the same length, got {len(mean)} and {len(std)}."
        )
    geometry: list[Any] = [v2.Resize(resize)]
    if train:
        geometry += [v2.RandomCrop(crop), v2.RandomHorizontalFlip()]
    else:
        geometry += [v2.CenterCrop(crop)]
    return v2.Compose(
        [
            *geometry,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )
