"""The paper's photo transforms (resize 256, random crop 227 + flip / centre crop)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dml_bench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, photo_transforms
from dml_bench.errors import ConfigError


def halves(width: int = 300, height: int = 200) -> Image.Image:
    """Left half red, right half blue: shows flips and keeps colours easy to check."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2, 0] = 255
    array[:, width // 2 :, 2] = 255
    return Image.fromarray(array)


def test_eval_output_shape_values_and_determinism():
    transform = photo_transforms(train=False)
    out = transform(halves())
    assert out.shape == (3, 227, 227) and out.dtype == torch.float32
    assert torch.equal(out, transform(halves()))
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    red = (torch.tensor([1.0, 0.0, 0.0]) - mean) / std
    blue = (torch.tensor([0.0, 0.0, 1.0]) - mean) / std
    assert torch.allclose(out[:, 100, 5], red, atol=1e-5)  # eval never flips
    assert torch.allclose(out[:, 100, -5], blue, atol=1e-5)


def test_train_crops_and_flips_at_random():
    torch.manual_seed(0)
    transform = photo_transforms(train=True)
    outs = [transform(halves()) for _ in range(12)]
    assert all(o.shape == (3, 227, 227) for o in outs)
    left_is_red = {bool(o[0, 100, 2] > 0) for o in outs}
    assert left_is_red == {True, False}  # both orientations occur


def test_custom_sizes_and_normalisation():
    out = photo_transforms(False, resize=40, crop=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(
        Image.new("RGB", (50, 80), (255, 0, 255))
    )
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out[:, 0, 0], torch.tensor([1.0, -1.0, 1.0]))


def test_crop_larger_than_resize_is_an_error():
    with pytest.raises(ConfigError, match="crop"):
        photo_transforms(True, resize=200, crop=227)
