"""Code shared by the proxy methods: field checks, NCA over proxies, distances to proxies."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml_bench.errors import ConfigError
from dml_bench.methods._proxies import ProxyNCABase, check_common_fields, nca_over_proxies


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"denominator": "softmax"}, "denominator"),
        ({"scale": 0.0}, "scale"),
        ({"scale": -1.0}, "scale"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"loss_lr": 0.0}, "loss_lr"),
    ],
)
def test_bad_common_fields_are_config_errors(values: dict[str, object], problem: str) -> None:
    fields: dict[str, object] = {
        "scale": 9.0,
        "denominator": "negatives",
        "label_smoothing": 0.0,
        "loss_lr": None,
    }
    with pytest.raises(ConfigError, match=problem):
        check_common_fields(**(fields | values))  # type: ignore[arg-type]


def test_good_common_fields_pass() -> None:
    check_common_fields(9.0, "negatives", 0.0, None)
    check_common_fields(1.0, "all", 0.5, 0.1)


def _brute_force(
    logits: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    denominator: str,
    eps: float,
) -> list[float]:
    """The cross entropy of docs/protocol.md's NCA, one row at a time, with plain Python sums."""
    out = []
    for i in range(logits.shape[0]):
        row = logits[i].tolist()
        pos = int(positive[i])
        negs = [j for j in range(len(row)) if bool(negatives[i, j])]
        den = negs + ([pos] if denominator == "all" else [])
        log_z = math.log(sum(math.exp(row[j]) for j in den))
        target = {pos: 1 - eps} | {j: eps / len(negs) for j in negs}
        out.append(-sum(t * (row[j] - log_z) for j, t in target.items()))
    return out


@pytest.mark.parametrize("denominator", ["negatives", "all"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_nca_over_proxies_matches_brute_force(denominator: str, eps: float) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    positive = torch.tensor([0, 1, 2, 3, 4])
    negatives = torch.ones(5, 6, dtype=torch.bool)
    negatives[torch.arange(5), positive] = False
    negatives[0, 5] = False  # rows may have fewer negatives than the other proxies
    got = nca_over_proxies(logits, positive, negatives, denominator, eps)  # type: ignore[arg-type]
    expected = _brute_force(logits, positive, negatives, denominator, eps)
    assert got.tolist() == pytest.approx(expected, rel=1e-12)


def test_all_denominator_without_smoothing_is_torch_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    positive = torch.randint(0, 4, (7,), generator=gen)
    negatives = ~F.one_hot(positive, 4).bool()
    got = nca_over_proxies(logits, positive, negatives, "all")
    expected = F.cross_entropy(logits, positive, reduction="none")
    assert torch.allclose(got, expected)


def test_paper_denominator_is_below_the_softmax_one() -> None:
    """Removing the positive from the denominator lowers the loss by log(1 + e^pos / sum)."""
    logits = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    positive, negatives = torch.tensor([0]), torch.tensor([[False, True, True]])
    paper = nca_over_proxies(logits, positive, negatives, "negatives")
    softmax = nca_over_proxies(logits, positive, negatives, "all")
    assert float(paper) == pytest.approx(math.log(math.exp(0) + math.exp(-1)) - 2.0)
    assert float(softmax) > float(paper)


def _base(num_proxies: int = 3, dim: int = 4) -> ProxyNCABase:
    return ProxyNCABase(num_proxies, dim, scale=9.0, denominator="negatives", label_smoothing=0.0)


def test_proxy_distances_are_squared_distances_of_unit_vectors() -> None:
    loss = _base()
    x = torch.randn(5, 4)
    got = loss.proxy_distances(x)
    xn, pn = F.normalize(x, dim=1), F.normalize(loss.proxies.detach(), dim=1)
    expected = torch.tensor(
        [[float(((xn[i] - pn[j]) ** 2).sum()) for j in range(3)] for i in range(5)]
    )
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(loss.normalized_proxies().norm(dim=1), torch.ones(3))


def test_zero_with_graph_reaches_embeddings_and_proxies() -> None:
    loss = _base()
    x = torch.randn(2, 4, requires_grad=True)
    out = loss.zero_with_graph(x)["loss"]
    value = out["losses"]
    assert float(value.detach()) == 0.0 and out["reduction_type"] == "already_reduced"  # type: ignore[index]
    value.backward()  # type: ignore[union-attr]
    assert x.grad is not None and loss.proxies.grad is not None
    assert "num_proxies=3" in repr(loss) and "denominator='negatives'" in repr(loss)
