"""SoftTriple loss (Qian, Shang, Sun, Hu, Li, Jin, "SoftTriple Loss: Deep Metric Learning Without
Triplet Sampling", ICCV 2019).

Each class c owns K learned centres w_c^1..w_c^K (unit-normalised; no label says which centre a
point belongs to). The similarity of x to class c is a soft maximum over its centres,

    S_c(x) = sum_k softmax_k(x . w_c^k / gamma) x . w_c^k,

and the loss is the cross entropy of ``lambda (S_c(x) - delta [c = y])`` over the classes (a
softmax with a margin delta on the true class), plus a regulariser that merges redundant centres
of a class, ``tau / (C K (K - 1)) sum_c sum_{k<k'} sqrt(2 - 2 w_c^k . w_c^k')``. A thin wrapper of
pytorch-metric-learning's ``SoftTripleLoss`` (cosine similarity, centres initialised as in the
authors' code) and that regulariser at weight tau. The regulariser has the value of PML's
``SparseCentersRegularizer`` (tested) but compares only the centres of each class with each other,
C K^2 similarities instead of PML's (C K)^2: with the glyphs' ~600 training classes and K = 10,
PML's 6000 x 6000 matrix per step made SoftTriple many times slower than every other method.

Defaults are the paper's implementation details: ``lambda`` (PML ``la``) = 20,
``gamma`` = 0.1, ``tau`` = 0.2, ``margin`` delta = 0.01, ``centers_per_class`` K = 10. The centres
are loss parameters, which the training loop optimises in their own group: the paper gives them a
learning rate 100 times the network's (1e-2 against 1e-4); ``loss_lr`` = 1e-1 against dml-bench's default Adam trunk lr
of 1e-3. Batches are random (``m_per_class=None``): like a classifier, the loss needs no positive
pair in the batch.

Family: ``proxy``. The centres are learned, class-owned stand-ins for the data that every
embedding is compared with instead of other data points, which is what Movshovitz-Attias et al.
call proxies (SoftTriple with K = 1 is a normalised softmax, i.e. Proxy-NCA with the positive in
the denominator, on cosine similarity). So the proxy diagnostics apply: ``assign`` is static, the
nearest centre of the point's own class (as ``proxy_nca`` with several proxies per class), and
``scale`` = lambda / 2, the softmax scale on squared distances of unit vectors equivalent to
lambda on cosines (``exp(lambda cos) = exp(lambda) exp(-(lambda / 2) ||x - w||^2)``). The K-centre
soft maximum makes the diagnostics' single-proxy NCA an approximation of SoftTriple's own
similarity, exact for K = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SoftTripleLoss
from pytorch_metric_learning.reducers import DivisorReducer
from pytorch_metric_learning.regularizers import BaseRegularizer

from dml_bench.errors import ConfigError
from dml_bench.methods._proxies import (
    DEFAULT_PROXY_LR,
    CosineProxies,
    check_loss_lr,
    proxy_diagnostics,
)
from dml_bench.methods.base import MethodConfig, MethodSpec
from dml_bench.methods.space import space_from_table

SEARCH_SPACE: dict[str, tuple[str, float, float, bool, str]] = {
    "la": (
        "float",
        4.0,
        64.0,
        True,
        "Qian et al. 2019: lambda=20 (scale of the class similarities); log range around it ours",
    ),
    "gamma": (
        "float",
        0.01,
        1.0,
        True,
        "Qian et al. 2019: gamma=0.1 (temperature of the soft maximum over centres); range ours",
    ),
    "margin": (
        "float",
        0.0,
        0.2,
        False,
        "Qian et al. 2019: delta=0.01 (margin on the true class); range ours",
    ),
    "tau": (
        "float",
        0.0,
        1.0,
        False,
        "Qian et al. 2019: tau=0.2 (weight of the centre-merging regulariser); range ours",
    ),
    "centers_per_class": (
        "int",
        1,
        20,
        False,
        "Qian et al. 2019: K=10 centres per class, studied against K in the paper; range ours",
    ),
    "loss_lr": (
        "float",
        1e-3,
        1.0,
        True,
        "Qian et al. 2019 give the centres 100x the network's lr; range 1x to 1000x the default "
        "trunk lr",
    ),
}
"""Tuning search space: field -> (kind, low, high, log scale, citation)."""


@dataclass(frozen=True)
class SoftTripleConfig(MethodConfig):
    """``la`` (lambda), ``gamma``, ``margin`` (delta), ``tau`` and ``centers_per_class`` (K) as in
    the module docstring; ``loss_lr``: the centres' learning rate."""

    m_per_class: int | None = None
    loss_lr: float | None = DEFAULT_PROXY_LR
    centers_per_class: int = 10
    la: float = 20.0
    gamma: float = 0.1
    margin: float = 0.01
    tau: float = 0.2

    def __post_init__(self) -> None:
        if not (isinstance(self.centers_per_class, int) and self.centers_per_class >= 1):
            raise ConfigError(
                f"soft_triple.centers_per_class must be an integer >= 1, got "
                f"{self.centers_per_class!r}."
            )
        for field in ("la", "gamma"):
            value = getattr(self, field)
            if not value > 0:
                raise ConfigError(f"soft_triple.{field} must be positive, got {value!r}.")
        for field in ("margin", "tau"):
            value = getattr(self, field)
            if not value >= 0:
                raise ConfigError(f"soft_triple.{field} must be non-negative, got {value!r}.")
        check_loss_lr(self.loss_lr, "soft_triple.loss_lr", "centres'")


class WithinClassCentersRegularizer(BaseRegularizer):
    """``sum_c sum_{k<k'} sqrt(2 - 2 cos(w_c^k, w_c^k')) / (C K (K - 1))`` (Qian et al.'s R).

    Called by the loss with the centres as rows, (C * K, dim), centre ``j`` of class ``j // K``.
    """

    def __init__(self, centers_per_class: int) -> None:
        super().__init__(reducer=DivisorReducer())
        self.centers_per_class = centers_per_class

    def compute_loss(self, weights: torch.Tensor) -> dict[str, dict[str, object]]:
        k = self.centers_per_class
        w = F.normalize(weights, p=2, dim=1).view(-1, k, weights.shape[1])
        upper = torch.triu_indices(k, k, offset=1, device=weights.device)
        cosines = (w @ w.transpose(1, 2))[:, upper[0], upper[1]].reshape(-1)
        tiny = torch.finfo(weights.dtype).tiny
        distances = torch.sqrt(2.0 + tiny - torch.clamp(2.0 * cosines, max=2.0))
        return {
            "loss": {
                "losses": distances,
                "indices": torch.arange(len(distances), device=weights.device),
                "reduction_type": "element",
                "divisor": 2 * len(distances),  # = C K (K - 1)
            }
        }


class DiagnosableSoftTripleLoss(CosineProxies, SoftTripleLoss):
    """PML's SoftTriple loss plus the :class:`~dml_bench.methods.base.ProxyLoss` protocol
    (``scale`` = ``la / 2``).

    PML stores the centres as ``fc`` of shape (embedding_size, num_classes * K), centre ``j``
    belonging to class ``j // K``; ``proxies`` is its (num_classes * K, embedding_size) view.
    """

    cosine_scale_field = "la"

    @property
    def proxies(self) -> torch.Tensor:
        return self.fc.t()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PML's (the authors') initialisation, Kaiming uniform with ``a = sqrt(5)`` on ``fc``,
        drawn from ``generator`` (the run's, handed in by ``build_method``; see ``RandomInit``)."""
        torch.nn.init.kaiming_uniform_(self.fc, a=math.sqrt(5), generator=generator)

    @torch.no_grad()
    def assign(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """p(x): the index of the centre of x's class most similar to x."""
        k = self.centers_per_class
        similarity = F.normalize(embeddings, p=2, dim=1) @ self.normalized_proxies().T.to(
            embeddings.dtype
        )
        own = similarity.view(len(embeddings), self.num_classes, k)[
            torch.arange(len(embeddings), device=embeddings.device), labels
        ]
        return labels.to(torch.long) * k + own.argmax(dim=1)


def build_loss(
    num_classes: int, embedding_size: int, config: SoftTripleConfig
) -> DiagnosableSoftTripleLoss:
    k = config.centers_per_class
    regularizer = None
    if config.tau > 0 and k > 1:  # with one centre per class there is nothing to merge
        regularizer = WithinClassCentersRegularizer(k)
    return DiagnosableSoftTripleLoss(
        num_classes=num_classes,
        embedding_size=embedding_size,
        centers_per_class=k,
        la=config.la,
        gamma=config.gamma,
        margin=config.margin,
        weight_regularizer=regularizer,
        weight_reg_weight=config.tau,
    )


SPEC: MethodSpec[SoftTripleConfig] = MethodSpec(
    name="soft_triple",
    description=(
        "SoftTriple: softmax over classes, each class a soft maximum over K learned centres, "
        "with a margin and a centre-merging regulariser; random batches."
    ),
    reference="Qian, Shang, Sun, Hu, Li, Jin, SoftTriple Loss: Deep Metric Learning Without "
    "Triplet Sampling, ICCV 2019",
    config_cls=SoftTripleConfig,
    build_loss=build_loss,
    build_miner=None,
    family="proxy",
    diagnostics=proxy_diagnostics,
    needs_positives=False,
    search_space=space_from_table(SEARCH_SPACE),
)
