"""The paper's numbers as data: each figure against docs/protocol.md, with its verification mark."""

from __future__ import annotations

from dml_bench.report.paper_numbers import PAPER_FIGURES, figures_for
from dml_bench.report.tables import eval_metrics


def test_proxy_nca_figures_are_the_papers_and_marked_verified() -> None:
    cub = next(f for f in figures_for("cub200") if f.method == "Proxy-NCA")
    assert cub.verified and cub.source_label == "paper"
    assert dict(cub.values) == {
        "recall@1": 49.21,
        "recall@2": 61.90,
        "recall@4": 67.90,
        "recall@8": 72.40,
        "nmi": 59.53,
    }
    assert next(f for f in figures_for("sop") if f.method == "Proxy-NCA").values == {
        "recall@1": 73.73
    }


def test_quoted_figures_are_marked_unverified() -> None:
    """docs/protocol.md: the baselines (Song et al.'s numbers) and the Reality Check are unverified."""
    for f in PAPER_FIGURES:
        if f.method != "Proxy-NCA":
            assert not f.verified and f.source_label.endswith("(unverified)"), f
    rc = next(f for f in figures_for("cars196") if f.method == "Triplet")
    assert rc.source_label == "Reality Check, 512-d (unverified)"
    assert dict(rc.values) == {"p@1": 79.13, "r_precision": 33.71, "map@r": 23.02}


def test_every_figure_is_a_metric_the_report_knows_in_percent() -> None:
    for f in PAPER_FIGURES:
        assert set(eval_metrics(f.values)) == set(f.values), f
        assert all(0 < v < 100 for v in f.values.values()), f
    assert figures_for("hershey") == []
    assert len(figures_for("cub200")) == 6 and len(figures_for("sop")) == 5
