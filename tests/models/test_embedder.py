"""The embedder: trunk + linear head, and frozen batch norm (Reality Check set-up)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dml_bench.errors import UserError
from dml_bench.models.embedder import Embedder, build_embedder, freeze_batch_norm


def test_forward_is_the_head_applied_to_the_trunk_features() -> None:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    model = Embedder(trunk, feature_dim=6, embedding_size=4)
    images = torch.rand(3, 3, 2, 2)
    expected = trunk(images) @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(images), expected)


def test_build_embedder_uses_the_registered_trunk() -> None:
    model = build_embedder("small_cnn", in_channels=1, embedding_size=8, pretrained=False)
    assert model.head.in_features == 128 and model.head.out_features == 8
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 8)
    with pytest.raises(UserError):
        build_embedder("no_such_trunk", 1, 8, False)


def batch_norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("freeze", [False, True])
def test_frozen_batch_norm_keeps_statistics_and_parameters(freeze: bool) -> None:
    torch.manual_seed(0)
    model = build_embedder("small_cnn", 1, 8, pretrained=False, freeze_bn=freeze)
    before = [bn.running_mean.clone() for bn in batch_norms(model)]
    model.train()
    model(torch.rand(4, 1, 16, 16) * 5 + 2)
    after = [bn.running_mean for bn in batch_norms(model)]
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    assert len(changed) == 4 and all(changed) != freeze
    assert all(bn.training != freeze for bn in batch_norms(model))
    bn_params = {id(p) for bn in batch_norms(model) for p in bn.parameters()}
    for param in model.parameters():
        assert param.requires_grad == (not freeze or id(param) not in bn_params)


def test_freezing_a_model_twice_is_harmless() -> None:
    model = build_embedder("small_cnn", 1, 8, pretrained=False)
    freeze_batch_norm(model)
    freeze_batch_norm(model)
    model.train()
    assert not any(bn.training for bn in batch_norms(model)) and model.head.training
