"""dml_bench.testing accepts a well-formed plugin and names what is wrong with broken ones."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dml_bench.methods import BatchNeeds, MethodConfig, MethodSpec
from dml_bench.testing import check_method, make_batch_labels


@dataclasses.dataclass(frozen=True)
class ToyConfig(MethodConfig):
    m_per_class: int | None = 4
    scale: float = 4.0


class ToyProxyLoss(nn.Module):
    """A minimal well-formed proxy loss: softmax over cosine similarity to class proxies."""

    def __init__(self, num_classes: int, embedding_size: int, scale: float) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_size))
        self.scale = scale

    def normalized_proxies(self) -> torch.Tensor:
        return F.normalize(self.proxies, dim=1)

    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels.long()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices: Any) -> torch.Tensor:
        logits = self.scale * F.normalize(embeddings, dim=1) @ self.normalized_proxies().T
        return F.cross_entropy(logits, labels)


class DetachedLoss(ToyProxyLoss):
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices: Any) -> torch.Tensor:
        return super().forward(embeddings.detach(), labels, indices)


class UnusedProxyLoss(ToyProxyLoss):
    def __init__(self, num_classes: int, embedding_size: int, scale: float) -> None:
        super().__init__(num_classes, embedding_size, scale)
        self.unused = nn.Parameter(torch.zeros(3))


class BadAssignLoss(ToyProxyLoss):
    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels.float()


def _spec(
    loss_cls: type[nn.Module], spec_cls: type[MethodSpec[Any]] = MethodSpec
) -> MethodSpec[Any]:
    return spec_cls(
        name="toy",
        description="a toy proxy method",
        reference="-",
        config_cls=ToyConfig,
        build_loss=lambda num_classes, size, config: loss_cls(num_classes, size, config.scale),
        family="proxy",
    )


def test_a_well_formed_plugin_passes() -> None:
    check_method(_spec(ToyProxyLoss))
    check_method(_spec(ToyProxyLoss), ToyConfig(m_per_class=2), batch_size=16, seed=3)


def test_check_method_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_method(_spec(ToyProxyLoss))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("loss_cls", "message"),
    [
        (DetachedLoss, "no gradient reaches the embeddings"),
        (UnusedProxyLoss, "'unused' gets no gradient"),
        (BadAssignLoss, "LongTensor"),
    ],
)
def test_broken_losses_are_named(loss_cls: type[nn.Module], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_method(_spec(loss_cls))


def test_a_loss_that_returns_a_vector_is_rejected() -> None:
    class VectorLoss(ToyProxyLoss):
        def forward(
            self, embeddings: torch.Tensor, labels: torch.Tensor, indices: Any
        ) -> torch.Tensor:
            return F.cross_entropy(embeddings @ self.proxies.T, labels, reduction="none")

    with pytest.raises(AssertionError, match="scalar"):
        check_method(_spec(VectorLoss))


def test_a_config_accepting_unknown_keys_is_rejected() -> None:
    @dataclasses.dataclass(frozen=True)
    class LenientSpec(MethodSpec[Any]):
        def make_config(self, values: dict[str, Any] | None = None) -> Any:
            return self.config_cls()

    with pytest.raises(AssertionError, match="no_such_key"):
        check_method(_spec(ToyProxyLoss, LenientSpec))


def test_needs_that_miss_a_bad_batch_are_rejected() -> None:
    class BlindNeeds(BatchNeeds):
        def check_labels(self, labels: torch.Tensor, method: str) -> None:
            return None

    @dataclasses.dataclass(frozen=True)
    class BlindSpec(MethodSpec[Any]):
        def batch_needs(self, config: Any) -> BatchNeeds:
            return BlindNeeds(m_per_class=config.m_per_class, needs_positives=True)

    with pytest.raises(AssertionError, match="singletons"):
        check_method(_spec(ToyProxyLoss, BlindSpec))


def test_batch_labels_honour_m_per_class() -> None:
    g = torch.Generator().manual_seed(0)
    labels = make_batch_labels(BatchNeeds(m_per_class=4, needs_positives=True), 10, 24, g)
    _, counts = torch.unique(labels, return_counts=True)
    assert len(labels) == 24 and counts.tolist() == [4] * 6
    with pytest.raises(AssertionError, match="num_classes"):
        make_batch_labels(BatchNeeds(m_per_class=2), 3, 24, g)
