"""Trunk + linear embedding head: the network every method trains.

The paper (Sec. 5) adds a fully connected layer of the embedding size on top of the trunk's pooled
features; embeddings are L2-normalised inside the losses and the evaluator, not here, so that
losses that want raw embeddings (e.g. with their own normalisation) can have them.
"""

from __future__ import annotations

import torch
from torch import nn

from dml_bench.models.trunks import TRUNKS


class Embedder(nn.Module):
    def __init__(
        self, trunk: nn.Module, feature_dim: int, embedding_size: int, trunk_name: str = ""
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.trunk_name = trunk_name  # the registry name, for per-trunk device choices
        self.head = nn.Linear(feature_dim, embedding_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))


def build_embedder(
    trunk: str, in_channels: int, embedding_size: int, pretrained: bool, freeze_bn: bool = False
) -> Embedder:
    module, feature_dim = TRUNKS.get(trunk).build(in_channels, pretrained)
    model = Embedder(module, feature_dim, embedding_size, trunk)
    if freeze_bn:
        freeze_batch_norm(model)
    return model


def freeze_batch_norm(model: nn.Module) -> None:
    """Keep batch-norm statistics and affine parameters fixed (Reality Check set-up, Sec. 4.1):
    small m-per-class batches give noisy statistics that hurt a pretrained trunk."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.requires_grad_(False)
            m.train = _stay_in_eval.__get__(m)  # type: ignore[method-assign]


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return self
