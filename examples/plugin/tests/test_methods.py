"""The plugin's methods honour dml-bench's contract and compute what their papers define.

``check_method`` is the conformance check dml-bench gives plugin authors (the built-ins pass the
same one); the other tests compare the losses against brute-force loops written from the papers.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from dml_bench.errors import ConfigError
from dml_bench.methods import ProxyLoss, build_method
from dml_bench.testing import check_method

from dml_bench_example_plugin import multi_similarity, proxy_anchor

SPECS = [multi_similarity.SPEC, proxy_anchor.SPEC]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_conforms_to_the_method_contract(spec) -> None:
    check_method(spec)


def test_multi_similarity_declares_what_it_needs() -> None:
    spec = multi_similarity.SPEC
    needs = spec.batch_needs(spec.default_config())
    assert (spec.family, needs.m_per_class, needs.needs_positives) == ("pair", 4, True)
    with pytest.raises(ConfigError, match="m_per_class"):
        spec.make_config({"m_per_class": None})
    with pytest.raises(ConfigError, match="beta"):
        spec.make_config({"beta": 0})


def _brute_force_multi_similarity(
    x: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, base: float, eps: float
) -> float:
    """MS mining (Wang et al. 2019, Eq. 7-8) and loss (Eq. 9), one anchor at a time."""
    x = F.normalize(x, dim=1)
    n = len(labels)
    total = 0.0
    for i in range(n):
        pos = [float(x[i] @ x[j]) for j in range(n) if j != i and labels[j] == labels[i]]
        neg = [float(x[i] @ x[j]) for j in range(n) if labels[j] != labels[i]]
        if not pos or not neg:
            continue
        kept_neg = [s for s in neg if s + eps > min(pos)]
        kept_pos = [s for s in pos if s - eps < max(neg)]
        if not kept_neg or not kept_pos:
            continue  # PML's miner gives the anchor no pairs, so no loss term
        total += math.log1p(sum(math.exp(-alpha * (s - base)) for s in kept_pos)) / alpha
        total += math.log1p(sum(math.exp(beta * (s - base)) for s in kept_neg)) / beta
    return total / n


@pytest.mark.parametrize(
    "values",
    [{}, {"alpha": 1.5, "beta": 20.0, "base": 0.3, "epsilon": 0.05}],
    ids=["default", "set"],
)
def test_multi_similarity_matches_the_paper(values: dict[str, float]) -> None:
    spec = multi_similarity.SPEC
    config = spec.make_config(values)
    method = build_method(spec, config, num_classes=6, embedding_size=8)
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(6).repeat_interleave(4)
    x = torch.randn(24, 8, generator=generator)
    got = method.compute_loss(x, labels).item()
    want = _brute_force_multi_similarity(
        x, labels, config.alpha, config.beta, config.base, config.epsilon
    )
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


def _brute_force_proxy_anchor(
    x: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor, alpha: float, margin: float
) -> float:
    """Kim et al. 2020, Eq. 4: positive term over proxies with positives, negative over all."""
    sims = F.normalize(x, dim=1) @ F.normalize(proxies, dim=1).T
    n_classes = proxies.shape[0]
    with_positives = [c for c in range(n_classes) if bool((labels == c).any())]
    pos = sum(
        math.log1p(
            sum(
                math.exp(-alpha * (float(sims[i, c]) - margin))
                for i in range(len(labels))
                if labels[i] == c
            )
        )
        for c in with_positives
    )
    neg = sum(
        math.log1p(
            sum(
                math.exp(alpha * (float(sims[i, c]) + margin))
                for i in range(len(labels))
                if labels[i] != c
            )
        )
        for c in range(n_classes)
    )
    return pos / len(with_positives) + neg / n_classes


def test_proxy_anchor_matches_the_paper_and_is_diagnosable() -> None:
    spec = proxy_anchor.SPEC
    torch.manual_seed(0)
    method = build_method(spec, spec.default_config(), num_classes=5, embedding_size=8)
    loss = method.loss
    assert isinstance(loss, ProxyLoss)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3, 1])
    x = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    got = method.compute_loss(x, labels).item()
    want = _brute_force_proxy_anchor(x, labels, loss.proxies.detach(), 32.0, 0.1)
    assert got == pytest.approx(want, rel=1e-4)
    # The diagnostics' softmax over squared distances with `scale` has Proxy-Anchor's sharpness.
    xn, pn = F.normalize(x, dim=1), loss.normalized_proxies()
    by_distance = torch.softmax(-loss.scale * torch.cdist(xn, pn) ** 2, dim=1)
    by_cosine = torch.softmax(32.0 * xn @ pn.T, dim=1)
    torch.testing.assert_close(by_distance, by_cosine, rtol=1e-4, atol=1e-6)
    assert torch.equal(loss.assign(x, labels), labels)
