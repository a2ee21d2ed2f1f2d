"""Figures: assert on the returned Figure objects (lines, bands, frames), then that PNGs save."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer

from dml_bench.report import plots


def _curves() -> pd.DataFrame:
    rows = []
    for label, seeds in (("proxy_nca", (0, 1, 2)), ("triplet", (0,))):
        for seed in seeds:
            for step in (0, 10, 20):
                rows.append(
                    {
                        "label": label,
                        "run_id": f"{label}{seed}",
                        "step": step,
                        "elapsed_s": step * 0.5,
                        "recall@1": 0.1 + step / 100 + seed / 100,
                        "proxy_nca_loss": 2.0,
                        "data_nca_loss": 1.0,
                        "eps_mean": 0.5,
                        "eps_max": 0.9,
                    }
                )
    return pd.DataFrame(rows)


def test_curve_figure_has_one_line_per_method_and_band_only_with_several_seeds() -> None:
    fig = plots.curve_figure(
        _curves(), y="recall@1", x="step", xlabel="step", ylabel="Recall@1", title="t"
    )
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # triplet has one seed: no band
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "Recall@1"
    mean_line = ax.get_lines()[0]
    assert np.allclose(mean_line.get_ydata(), [0.11, 0.21, 0.31])
    assert "(n=3)" in ax.get_legend().get_texts()[0].get_text()


def test_bound_figure_drops_panels_without_data() -> None:
    fig = plots.bound_figure(_curves(), title="t")
    assert [ax.get_title() for ax in fig.axes] == ["NCA: plain check", "Proxy approximation error"]
    assert all(len(ax.get_lines()) == 4 for ax in fig.axes)  # 2 methods x 2 quantities
    (legend,) = fig.legends  # one legend for all panels: a colour per method, then the styles
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["proxy_nca", "triplet"] + [text for _, text in plots.BOUND_STYLES]
    proxy_line = fig.axes[0].get_lines()[0]
    assert to_hex(proxy_line.get_color()) == to_hex(legend.get_lines()[0].get_color())


def test_bound_figure_eps_panel_has_a_convention_of_its_own() -> None:
    """Solid and dashed mean the bounding side and the data loss, and only that: a1469a8 drew
    eps max solid and eps mean dashed, under a shared legend "solid: proxy loss; eps max"."""
    fig = plots.bound_figure(_curves(), title="t")
    loss, eps = fig.axes
    assert {line.get_linestyle() for line in loss.get_lines()} == {"-", "--"}
    assert not {line.get_linestyle() for line in eps.get_lines()} & {"-", "--"}
    assert sorted(line.get_marker() for line in eps.get_lines()) == ["^", "^", "o", "o"]
    assert loss.get_legend() is None
    own = eps.get_legend()
    assert own is not None
    assert [t.get_text() for t in own.get_texts()] == [
        "eps max (triangles)",
        "eps mean (circles)",
    ]
    assert [h.get_marker() for h in own.legend_handles] == ["^", "o"]  # type: ignore[union-attr]
    (shared,) = fig.legends
    assert not any("eps" in t.get_text() for t in shared.get_texts())


def test_sweep_figure_one_line_per_method() -> None:
    pts = [
        plots.SweepPoint("proxy_nca", c, 0.5 + c / 10, 0.49 + c / 10, 0.51 + c / 10, 2)
        for c in (1, 2, 4)
    ]
    nan = float("nan")
    pts += [plots.SweepPoint("proxy_nca_dynamic", c, 0.4, nan, nan, 1) for c in (0.5, 1)]
    fig = plots.sweep_figure({"recall@1": pts, "nmi": pts}, title="t")
    assert len(fig.axes) == 2
    assert all(len(ax.get_lines()) >= 2 for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.5", "1", "2", "4"]


def test_retrieval_figure_frames_correct_neighbours_green(tmp_path: Path) -> None:
    q, k = 2, 4
    block = plots.RetrievalBlock(
        label="proxy_nca",
        query_images=np.zeros((q, 8, 8, 3), np.uint8),
        neighbor_images=np.full((q, k, 8, 8, 3), 200, np.uint8),
        query_labels=np.array([0, 1]),
        neighbor_labels=np.array([[0, 1, 0, 1], [1, 1, 0, 0]]),
    )
    fig = plots.retrieval_figure([block, block], n_queries=2, top_k=3)
    assert len(fig.axes) == 2 * 2 * (3 + 1)
    grid = np.array(fig.axes).reshape(4, 4)
    green, red = "#1a9e1a", "#d62728"
    colors = [to_hex(grid[0, j].spines["top"].get_edgecolor()) for j in range(1, 4)]
    assert colors == [green, red, green]
    colors = [to_hex(grid[1, j].spines["top"].get_edgecolor()) for j in range(1, 4)]
    assert colors == [green, green, red]
    path = plots.save_figure(fig, tmp_path / "q.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retrieval_figure_captions_each_image_with_its_class() -> None:
    """At a1469a8 a look-alike glyph of another font was a red frame with no class shown."""
    named = plots.RetrievalBlock(
        label="proxy_nca",
        query_images=np.zeros((1, 8, 8, 3), np.uint8),
        neighbor_images=np.zeros((1, 2, 8, 8, 3), np.uint8),
        query_labels=np.array([0]),
        neighbor_labels=np.array([[0, 5]]),
        query_classes=np.array(["rowmans:A"]),
        neighbor_classes=np.array([["rowmans:A", "rowmand:A"]]),
    )
    fig = plots.retrieval_figure([named], n_queries=1, top_k=2)
    assert [ax.get_xlabel() for ax in fig.axes] == ["rowmans:A", "rowmans:A", "rowmand:A"]
    unnamed = dataclasses.replace(named, query_classes=None, neighbor_classes=None)
    fig = plots.retrieval_figure([unnamed], n_queries=1, top_k=2)  # records without names
    assert [ax.get_xlabel() for ax in fig.axes] == ["class 0", "class 0", "class 5"]


def test_curve_band_is_clipped_to_the_bounds_of_its_quantity() -> None:
    curves = _curves()
    curves.loc[curves["run_id"] == "proxy_nca0", "recall@1"] = 0.0  # a wide band near 0
    kwargs = dict(y="recall@1", x="step", xlabel="s", ylabel="r", title="t")
    free = plots.curve_figure(curves, **kwargs)  # type: ignore[arg-type]
    clipped = plots.curve_figure(curves, bounds=(0.0, 1.0), **kwargs)  # type: ignore[arg-type]

    def lowest(fig: object) -> float:
        bands = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]  # type: ignore[attr-defined]
        return min(float(path.vertices[:, 1].min()) for b in bands for path in b.get_paths())

    assert lowest(free) < 0.0 and lowest(clipped) == 0.0


def test_sweep_figure_with_one_proxy_count_draws_bars() -> None:
    """Every method at 1 proxy per class: a1469a8 drew lone points on a log axis with one tick;
    now each method is a bar with its error bar, and the title says there is no sweep."""
    pts = [
        plots.SweepPoint("proxy_nca", 1, 0.61, 0.59, 0.63, 3),
        plots.SweepPoint("proxy_nca_dynamic", 1, 0.55, float("nan"), float("nan"), 1),
    ]
    fig = plots.sweep_figure({"recall@1": pts}, title="t")
    (ax,) = fig.axes
    bars = ax.patches
    assert [b.get_height() for b in bars] == [0.61, 0.55]
    assert [to_hex(b.get_facecolor()) for b in bars] == [plots.color_for(0), plots.color_for(1)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["proxy_nca", "proxy_nca_dynamic"]
    assert ax.get_xscale() == "linear"
    assert "one value: no sweep" in ax.get_title() and "1 proxies per class" in ax.get_title()
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errorbars) == 2 and all(c.has_yerr for c in errorbars)


def test_sweep_error_bars_follow_a_clipped_interval() -> None:
    """An interval cut at 0 (mean 0.05, bounds [0.0, 0.2]) is not symmetric: the bar runs from
    the cut bound to the upper one, not 0.05 +- 0.1 (below 0, and short of 0.2)."""
    pts = [
        plots.SweepPoint("proxy_nca_dynamic", 1, 0.05, 0.0, 0.2, 3),
        plots.SweepPoint("proxy_nca_dynamic", 2, 0.5, 0.4, 0.6, 3),
    ]
    (ax,) = plots.sweep_figure({"recall@1": pts}, title="t").axes
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    segments = bars.lines[2][0].get_segments()
    assert [tuple(seg[:, 1]) for seg in segments] == [
        pytest.approx((0.0, 0.2)),
        pytest.approx((0.4, 0.6)),
    ]
    single = plots.sweep_figure({"nmi": pts[:1]}, title="t").axes[0]
    (bar,) = [c for c in single.containers if isinstance(c, ErrorbarContainer)]
    assert tuple(bar.lines[2][0].get_segments()[0][:, 1]) == pytest.approx((0.0, 0.2))


def test_bound_figure_lines_are_means_over_seeds_per_step() -> None:
    """Each RQ1 line is the mean over a method's seeds at each step (numpy by hand)."""
    curves = _curves()
    curves["proxy_nca_loss"] = (
        2.0
        + curves["step"] / 10
        + curves["run_id"].str[-1].map({"0": 0.0, "1": 0.3, "2": 0.9}).fillna(0.0)
    )
    fig = plots.bound_figure(curves, title="t")
    proxy_line = fig.axes[0].get_lines()[0]  # NCA plain check: proxy_nca's proxy loss
    mine = curves[curves["label"] == "proxy_nca"]
    expected = mine.groupby("step")["proxy_nca_loss"].mean().to_numpy()
    assert np.allclose(proxy_line.get_ydata(), expected)
    assert np.allclose(expected, [2.4, 3.4, 4.4])
