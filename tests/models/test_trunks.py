"""ImageNet weights come from torch's hub cache, loaded without running code.

Offline: the "downloaded" weights are written into a temporary hub cache (``TORCH_HOME``) under the
file name torchvision would download them to; torch.hub then takes them as already downloaded.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from torchvision.models import GoogLeNet_Weights, googlenet

from dml_bench.errors import UserError
from dml_bench.models.trunks import build_googlenet
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
