"""Trunks: registry, feature sizes, the greyscale first conv, and ImageNet weights that come
from torch's hub cache, loaded without running code.

Offline: the "downloaded" weights are written into a temporary hub cache (``TORCH_HOME``) under the
file name torchvision would download them to; torch.hub then takes them as already downloaded.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from torch import nn
from torchvision.models import GoogLeNet_Weights, googlenet

from dml_bench.errors import UnknownNameError, UserError
from dml_bench.models.trunks import (
    IMAGENET_MEAN_STD,
    TRUNKS,
    _adapt_first_conv,
    build_googlenet,
    build_small_cnn,
)
from tests.train.test_checkpoint import PlantsAMarker


@pytest.fixture
def hub_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    name = Path(urlsplit(GoogLeNet_Weights.IMAGENET1K_V1.url).path).name
    path = tmp_path / "torch" / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True)
    return path


def test_cached_imagenet_weights_are_loaded_into_the_trunk(hub_file: Path) -> None:
    torch.manual_seed(0)
    reference = googlenet(weights=None, aux_logits=True, init_weights=True)
    torch.save(reference.state_dict(), hub_file)
    model, features = build_googlenet(3, pretrained=True)
    assert features == 1024
    assert model.aux1 is None and model.aux2 is None and not model.transform_input
    loaded = model.state_dict()
    for name, tensor in reference.state_dict().items():
        if not name.startswith(("aux", "fc.")):
            assert torch.equal(loaded[name], tensor), name


def test_a_planted_weights_file_is_refused_and_runs_nothing(hub_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    torch.save({"conv1.conv.weight": PlantsAMarker(marker)}, hub_file)
    with pytest.raises(UserError, match="were not loaded") as refused:
        build_googlenet(3, pretrained=True)
    assert not marker.exists()
    assert str(hub_file) in str(refused.value) and "--no-pretrained" in str(refused.value)


def test_registry_lists_the_three_trunks_sorted() -> None:
    assert TRUNKS.names() == ["googlenet", "resnet50", "small_cnn"]
    assert TRUNKS.get("small_cnn").weights_mean_std is None
    assert TRUNKS.get("googlenet").weights_mean_std == IMAGENET_MEAN_STD
    with pytest.raises(UnknownNameError, match="small_cnn"):
        TRUNKS.get("vgg16")


@pytest.mark.parametrize("in_channels", [1, 3])
def test_small_cnn_size_and_output(in_channels: int) -> None:
    torch.manual_seed(0)
    module, feature_dim = build_small_cnn(in_channels, pretrained=True)  # no weights: logged
    widths = (in_channels, 16, 32, 64, 128)
    # per block: a 3x3 conv without bias, then batch norm's weight and bias
    expected = sum(9 * a * b + 2 * b for a, b in zip(widths, widths[1:], strict=False))
    assert sum(p.numel() for p in module.parameters()) == expected
    features = module(torch.rand(5, in_channels, 32, 32))
    assert feature_dim == 128 and features.shape == (5, 128)
    assert bool((features >= 0).all())  # ReLU then average pooling


@pytest.mark.parametrize("bias", [False, True])
def test_adapted_conv_on_grey_equals_the_rgb_conv_on_the_replicated_grey(bias: bool) -> None:
    torch.manual_seed(1)
    rgb = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=bias)
    grey = _adapt_first_conv(rgb, 1)
    assert grey.in_channels == 1 and grey.stride == rgb.stride and grey.padding == rgb.padding
    image = torch.rand(2, 1, 9, 9)
    torch.testing.assert_close(grey(image), rgb(image.repeat(1, 3, 1, 1)))
    assert _adapt_first_conv(rgb, 3) is rgb


@pytest.mark.parametrize(("name", "dim"), [("googlenet", 1024), ("resnet50", 2048)])
def test_torchvision_trunks_take_grey_input_and_give_pooled_features(name: str, dim: int) -> None:
    torch.manual_seed(0)
    module, feature_dim = TRUNKS.get(name).build(1, False)
    module.eval()
    with torch.no_grad():
        features = module(torch.rand(1, 1, 64, 64))
    assert feature_dim == dim and features.shape == (1, dim)
