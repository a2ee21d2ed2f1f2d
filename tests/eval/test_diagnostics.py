"""Proxy diagnostics against brute-force loops, and the paper's claims on constructed cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dml_bench.eval.diagnostics import (
    order_agreement,
    order_ties,
    proxy_bound_terms,
    sample_triplets,
)
from dml_bench.methods.proxy_nca import StaticProxyNCALoss
from dml_bench.methods.proxy_nca_dynamic import DynamicProxyNCALoss


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)  # proxies are initialised from the global RNG


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def _d(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((_unit(a) - _unit(b)) ** 2).sum())


def _brute_force_terms(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    loss: StaticProxyNCALoss | DynamicProxyNCALoss,
    margin: float,
    denominator: str,
) -> dict[str, float]:
    proxies = loss.proxies.detach().double()
    p = loss.assign(embeddings, labels).tolist()
    s = loss.scale
    n = len(labels)
    nca = {"data": [], "proxy": []}
    triplet = {"data": [], "proxy": []}
    for i, j in itertools.permutations(range(n), 2):
        if labels[i] != labels[j]:
            continue
        negatives = [k for k in range(n) if labels[k] != labels[i]]
        x = embeddings[i]
        pairs = {
            "data": (_d(x, embeddings[j]), [_d(x, embeddings[k]) for k in negatives]),
            "proxy": (_d(x, proxies[p[j]]), [_d(x, proxies[p[k]]) for k in negatives]),
        }
        for kind, (positive, negative) in pairs.items():
            denominator_terms = [math.exp(-s * dn) for dn in negative]
            if denominator == "all":
                denominator_terms.append(math.exp(-s * positive))
            nca[kind].append(s * positive + math.log(sum(denominator_terms)))
            triplet[kind].extend(max(0.0, positive - dn + margin) for dn in negative)
    eps = [math.sqrt(_d(x, proxies[p[i]])) for i, x in enumerate(embeddings)]
    return {
        "proxy_nca_loss": sum(nca["proxy"]) / len(nca["proxy"]),
        "data_nca_loss": sum(nca["data"]) / len(nca["data"]),
        "proxy_triplet_loss": sum(triplet["proxy"]) / len(triplet["proxy"]),
        "data_triplet_loss": sum(triplet["data"]) / len(triplet["data"]),
        "eps_mean": sum(eps) / len(eps),
        "eps_max": max(eps),
    }


def _batch(num_classes: int, m: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(m)
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels


@pytest.mark.parametrize("denominator", ["negatives", "all"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_bound_terms_match_brute_force(denominator: str, dynamic: bool) -> None:
    loss = (
        DynamicProxyNCALoss(5, 4, scale=3.0, denominator=denominator)
        if dynamic
        else StaticProxyNCALoss(4, 4, scale=3.0, denominator=denominator, proxies_per_class=2)
    )
    embeddings, labels = _batch(4, 3, 4, seed=1)
    terms = proxy_bound_terms(embeddings, labels, loss, margin=0.3)
    expected = _brute_force_terms(embeddings, labels, loss, 0.3, denominator)
    assert expected.keys() <= terms.keys()
    for key, value in expected.items():
        assert terms[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    # the paper's bound reads the same proxy loss (eval/bound.py, tested there on its own)
    assert terms["bound_nca_proxy"] == pytest.approx(terms["proxy_nca_loss"], rel=1e-6)
    assert terms["bound_eps"] == pytest.approx(terms["eps_max"], rel=1e-6)
    assert 1 <= terms["proxies_in_use"] <= loss.proxies.shape[0]


def test_denominator_defaults_to_the_losss_own() -> None:
    loss = StaticProxyNCALoss(3, 4, denominator="all")
    embeddings, labels = _batch(3, 2, 4, seed=2)
    assert proxy_bound_terms(embeddings, labels, loss) == proxy_bound_terms(
        embeddings, labels, loss, denominator="all"
    )
    assert proxy_bound_terms(embeddings, labels, loss) != proxy_bound_terms(
        embeddings, labels, loss, denominator="negatives"
    )


def test_embeddings_on_their_proxies_make_proxy_and_data_losses_coincide() -> None:
    """The paper's limit case: eps = 0, so proxies replace points exactly (Sec. 4)."""
    loss = StaticProxyNCALoss(4, 6, denominator="negatives")
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3])
    embeddings = 2.5 * loss.proxies.detach()[labels]  # any positive scale: distances normalise
    terms = proxy_bound_terms(embeddings, labels, loss)
    assert terms["eps_max"] == pytest.approx(0.0, abs=1e-6)
    assert terms["eps_mean"] == pytest.approx(0.0, abs=1e-6)
    assert terms["proxy_nca_loss"] == pytest.approx(terms["data_nca_loss"], rel=1e-5)
    assert terms["proxy_triplet_loss"] == pytest.approx(terms["data_triplet_loss"], abs=1e-6)
    triplets = sample_triplets(labels, 200, torch.Generator().manual_seed(0))
    assert order_agreement(embeddings, labels, loss, triplets) == 1.0


@pytest.mark.parametrize("noise", [1.0, 0.3, 0.05])
def test_proxy_and_data_losses_differ_by_at_most_a_multiple_of_eps(noise: float) -> None:
    """|d(x,y) - d(x,p(y))| <= 4 eps for unit vectors, so the hinge terms differ by <= 8 eps and
    the NCA terms by <= 8 s eps: the gap closes as points approach their proxies."""
    loss = StaticProxyNCALoss(5, 8, scale=2.0)
    labels = torch.arange(5).repeat_interleave(4)
    g = torch.Generator().manual_seed(4)
    centres = torch.nn.functional.normalize(loss.proxies.detach()[labels], dim=1)
    embeddings = centres + noise * torch.randn(centres.shape, generator=g)
    terms = proxy_bound_terms(embeddings, labels, loss)
    eps = terms["eps_max"]
    assert abs(terms["data_triplet_loss"] - terms["proxy_triplet_loss"]) <= 8 * eps + 1e-6
    assert abs(terms["data_nca_loss"] - terms["proxy_nca_loss"]) <= 8 * 2.0 * eps + 1e-6


def test_terms_without_positive_pairs_are_nan() -> None:
    loss = StaticProxyNCALoss(6, 4)
    embeddings, _ = _batch(6, 1, 4, seed=5)
    terms = proxy_bound_terms(embeddings, torch.arange(6), loss)
    assert math.isnan(terms["data_nca_loss"]) and math.isnan(terms["proxy_triplet_loss"])
    assert math.isfinite(terms["eps_max"])


def test_sample_triplets_are_valid_deterministic_and_cover_the_anchors() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])  # 2 and 3 are singletons: never anchors
    triplets = sample_triplets(labels, 500, torch.Generator().manual_seed(1))
    assert triplets.shape == (500, 3) and triplets.dtype == torch.long
    anchor, positive, negative = triplets.unbind(1)
    assert (labels[anchor] == labels[positive]).all() and (anchor != positive).all()
    assert (labels[anchor] != labels[negative]).all()
    assert set(anchor.tolist()) == {0, 1, 2, 3, 4}
    assert set(negative.tolist()) == set(range(7))
    again = sample_triplets(labels, 500, torch.Generator().manual_seed(1))
    assert torch.equal(triplets, again)


def test_sample_triplets_without_any_triplet_raises() -> None:
    with pytest.raises(ValueError, match="no triplet"):
        sample_triplets(torch.arange(5), 10, torch.Generator())
    with pytest.raises(ValueError, match="no triplet"):
        sample_triplets(torch.zeros(5, dtype=torch.long), 10, torch.Generator())


@pytest.mark.parametrize("dynamic", [False, True])
def test_order_agreement_matches_brute_force(dynamic: bool) -> None:
    loss = DynamicProxyNCALoss(4, 3) if dynamic else StaticProxyNCALoss(4, 3)
    embeddings, labels = _batch(4, 4, 3, seed=6)
    triplets = sample_triplets(labels, 300, torch.Generator().manual_seed(2))
    proxies = loss.proxies.detach().double()
    p = loss.assign(embeddings, labels).tolist()
    agree = [
        (_d(embeddings[a], embeddings[y]) < _d(embeddings[a], embeddings[z]))
        == (_d(embeddings[a], proxies[p[y]]) < _d(embeddings[a], proxies[p[z]]))
        for a, y, z in triplets.tolist()
    ]
    value = order_agreement(embeddings, labels, loss, triplets)
    assert value == pytest.approx(sum(agree) / len(agree))
    assert 0.0 < value < 1.0  # random proxies keep some orders and break others


def test_ties_are_the_triplets_whose_positive_and_negative_share_a_proxy() -> None:
    static = StaticProxyNCALoss(4, 3)
    embeddings, labels = _batch(4, 4, 3, seed=6)
    triplets = sample_triplets(labels, 300, torch.Generator().manual_seed(2))
    assert order_ties(embeddings, labels, static, triplets) == 0.0  # one proxy per class
    dynamic = DynamicProxyNCALoss(4, 3)
    p = dynamic.assign(embeddings, labels).tolist()
    tied = [p[y] == p[z] for _, y, z in triplets.tolist()]
    assert order_ties(embeddings, labels, dynamic, triplets) == pytest.approx(sum(tied) / len(tied))
    # every point on one proxy: all tied, and agreement falls to the share the data misorders
    with torch.no_grad():
        dynamic.proxies.zero_()
        dynamic.proxies[:, 0] = 1.0
    assert order_ties(embeddings, labels, dynamic, triplets) == 1.0
    a, y, z = triplets.unbind(dim=1)
    x = torch.nn.functional.normalize(embeddings, dim=1)
    data_first = (x[a] - x[y]).pow(2).sum(1) < (x[a] - x[z]).pow(2).sum(1)
    expected = float((~data_first).float().mean())
    assert order_agreement(embeddings, labels, dynamic, triplets) == pytest.approx(expected)


def test_triplet_term_is_the_same_when_computed_in_anchor_blocks() -> None:
    from dml_bench.eval.diagnostics import _pair_masks, _triplet, squared_distances

    embeddings, labels = _batch(5, 4, 6, seed=7)
    distances = squared_distances(embeddings, embeddings)
    positive_pairs, negative_pairs = _pair_masks(labels)
    whole = _triplet(distances, positive_pairs, negative_pairs, 0.2)
    blocked = _triplet(distances, positive_pairs, negative_pairs, 0.2, max_elements=3 * 20 * 20)
    assert blocked == pytest.approx(whole, rel=1e-12)
