"""Figures of the report, built with matplotlib's object API; each function returns its Figure.

Figures are created as ``matplotlib.figure.Figure`` objects rather than through ``pyplot``: no
global figure registry, no backend switch, nothing to close, so library code has no side effects
(``Figure.savefig`` renders with the Agg canvas). Callers save with :func:`save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dml_bench.report.stats import mean_curve

DPI = 150
_COLORS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


_MARKERS = ("o", "s", "^", "D", "v")


def color_for(index: int) -> str:
    return _COLORS[index % len(_COLORS)]


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _legend(ax: Any) -> None:
    """Inside the axes for a few entries; below them when many would hide the curves."""
    handles, _ = ax.get_legend_handles_labels()
    if len(handles) > 5:
        ax.legend(
            fontsize="small",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.15),
            ncols=2,
            frameon=False,
        )
    elif handles:
        ax.legend(fontsize="small", loc="best", framealpha=0.85)


def curve_figure(
    curves: pd.DataFrame,
    y: str,
    x: str,
    xlabel: str,
    ylabel: str,
    title: str,
    bounds: tuple[float, float] | None = None,
    notes: Mapping[str, str] | None = None,
) -> Figure:
    """``y`` against ``x`` (``step`` or ``elapsed_s``): one line per ``label``, mean over seeds.

    A shaded band shows the 95% t-interval over seeds where a method has at least two seeds,
    clipped to ``bounds`` (the range of ``y``); the legend says how many seeds each line
    averages (RQ2, RQ3), and ``notes[label]`` beside it where given (RQ2's time figure: a
    method whose seeds ran under machine loads that differ).
    """
    many = curves["label"].nunique() > 5  # the legend goes below the axes: make room
    fig, (ax,) = _new_figure(width=8.5 if many else 6.4, height=6.5 if many else 4.2)
    for i, (label, group) in enumerate(curves.groupby("label", sort=False)):
        summary = mean_curve(group, y=y, x=x, bounds=bounds)
        n = int(group["run_id"].nunique())
        color = color_for(i)
        note = f", {notes[label]}" if notes and label in notes else ""
        ax.plot(
            summary["x"], summary["mean"], color=color, marker=".", label=f"{label} (n={n}{note})"
        )
        band = summary[summary["n"] >= 2]
        if not band.empty:
            ax.fill_between(
                band["x"], band["low"], band["high"], color=color, alpha=0.2, linewidth=0
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


LineStyle = Literal["-", "--", ":", "-."]


@dataclass(frozen=True)
class BoundLine:
    """One quantity of an RQ1 panel: its metrics.csv column, how it is drawn, what it is."""

    column: str
    style: LineStyle
    label: str
    marker: str = ""


@dataclass(frozen=True)
class BoundPanel:
    """One panel of the RQ1 figure. Panels that compare the two sides of a bound follow the
    figure's shared convention (:data:`BOUND_STYLES`: solid for the bounding side, dashed for
    the data loss); the others (``own_legend``) draw other quantities in styles of their own and
    say so in a legend inside the panel, so that no line style means two things."""

    title: str
    ylabel: str
    lines: tuple[BoundLine, ...]
    own_legend: bool = False


def _sides(title: str, bounding: str, data: str, what: str) -> BoundPanel:
    return BoundPanel(
        title, "loss", (BoundLine(bounding, "-", what), BoundLine(data, "--", "data loss"))
    )


#: The RQ1 figure's panels, in order.
BOUND_PANELS = (
    _sides("NCA: paper's bound", "bound_nca_rhs", "bound_nca_data", "right-hand side"),
    _sides("NCA: plain check", "proxy_nca_loss", "data_nca_loss", "proxy loss"),
    _sides("Triplet: paper's bound", "bound_triplet_rhs", "bound_triplet_data", "right-hand side"),
    BoundPanel(
        "Slack terms (NCA)",
        "value",
        (
            BoundLine("bound_nca_log_term", ":", "(1 - alpha) log n"),
            BoundLine("bound_nca_eps_term", "-.", "c eps"),
        ),
        own_legend=True,
    ),
    BoundPanel(
        "Proxy approximation error",
        "distance to proxy",
        (
            BoundLine("eps_max", ":", "eps max (triangles)", "^"),
            BoundLine("eps_mean", ":", "eps mean (circles)", "o"),
        ),
        own_legend=True,
    ),
)
#: Runs recorded before the paper's bound was logged show the plain triplet panel instead.
PLAIN_TRIPLET_PANEL = _sides(
    "Triplet: plain check", "proxy_triplet_loss", "data_triplet_loss", "proxy loss"
)
#: The shared convention of the panels that compare the two sides of a bound.
BOUND_STYLES: tuple[tuple[Literal["-", "--"], str], ...] = (
    ("-", "solid: right-hand side (paper's bound) or proxy loss (plain check)"),
    ("--", "dashed: data loss"),
)


def _logged(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and bool(frame[column].notna().any())


def bound_figure(curves: pd.DataFrame, title: str) -> Figure:
    """RQ1: the paper's bound (right-hand side solid, data loss dashed), the plain check (proxy
    loss solid, data loss dashed), the slack terms and eps over steps, per method.

    The paper's claim is that the proxy loss upper-bounds the data loss, tighter as eps shrinks;
    each panel draws a method's quantities in one colour so the gap is visible. Panels whose
    columns are absent from every run are left out. One legend below the panels serves the
    panels that compare two sides (a colour per method, then solid and dashed); the slack and
    eps panels carry their own legend (see :class:`BoundPanel`).
    """
    from matplotlib.lines import Line2D

    candidates = BOUND_PANELS
    if not _logged(curves, "bound_triplet_rhs"):
        candidates = (*BOUND_PANELS[:2], PLAIN_TRIPLET_PANEL, *BOUND_PANELS[3:])
    panels = [p for p in candidates if any(_logged(curves, line.column) for line in p.lines)]
    labels = list(dict.fromkeys(curves["label"]))
    fig, axes = _new_figure(ncols=max(1, len(panels)), width=5.0, height=4.2 + 0.22 * len(labels))
    for ax, panel in zip(axes, panels, strict=False):
        for i, label in enumerate(labels):
            group = curves[curves["label"] == label]
            for line in panel.lines:
                if not _logged(group, line.column):
                    continue
                summary = mean_curve(group, y=line.column)
                ax.plot(
                    summary["x"],
                    summary["mean"],
                    linestyle=line.style,
                    marker=line.marker or "None",
                    markersize=4,
                    color=color_for(i),
                )
        if panel.own_legend:
            own = [
                Line2D([], [], color="black", linestyle=s.style, marker=s.marker or "None")
                for s in panel.lines
            ]
            ax.legend(own, [s.label for s in panel.lines], fontsize="small", framealpha=0.85)
        ax.set_xlabel("training step")
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=color_for(i), label=label) for i, label in enumerate(labels)]
    handles += [Line2D([], [], color="black", linestyle=s, label=text) for s, text in BOUND_STYLES]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=3, fontsize="small", frameon=False
    )
    fig.suptitle(title)
    return fig


@dataclass(frozen=True)
class SweepPoint:
    """One method at one ``proxies_per_class`` value: mean and CI bounds of a metric (NaN
    bounds for one seed)."""

    method: str
    proxies_per_class: float
    mean: float
    low: float
    high: float
    n: int

    @property
    def error(self) -> tuple[float, float]:
        """The error bar below and above the mean. Not a half-width: an interval cut at the
        range of the metric (see ``stats.mean_ci``) is no longer symmetric about the mean, and
        a symmetric bar would reach past the range on one side and short of the cut bound on
        the other. (0, 0) without an interval."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return 0.0, 0.0
        return self.mean - self.low, self.high - self.mean


def sweep_figure(points: Mapping[str, Sequence[SweepPoint]], title: str) -> Figure:
    """RQ5: each metric (one panel per key of ``points``) against the number of proxies per class.

    One line per method (static ``proxy_nca``, dynamic ``proxy_nca_dynamic``), error bars are 95%
    t-intervals over seeds (none with one seed), from the interval's own bounds
    (:attr:`SweepPoint.error`). The x axis is logarithmic because sweeps double;
    methods are shifted slightly sideways so that points at the same x do not hide each other.
    A panel whose points all share one number of proxies is drawn as bars, one per method (see
    :func:`_single_count_panel`).
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, axes = _new_figure(ncols=max(1, len(points)), width=5.0)
    for ax, (metric, metric_points) in zip(axes, points.items(), strict=False):
        methods = list(dict.fromkeys(p.method for p in metric_points))
        if len({p.proxies_per_class for p in metric_points}) == 1:
            _single_count_panel(ax, metric, metric_points, methods)
            continue
        for i, method in enumerate(methods):
            pts = sorted(
                (p for p in metric_points if p.method == method), key=lambda p: p.proxies_per_class
            )
            dodge = 2.0 ** (0.05 * (i - (len(methods) - 1) / 2))
            xs = [p.proxies_per_class * dodge for p in pts]
            ys = [p.mean for p in pts]
            err = np.array([p.error for p in pts]).T.reshape(2, len(pts))
            ax.errorbar(
                xs,
                ys,
                yerr=err,
                marker=_MARKERS[i % len(_MARKERS)],
                capsize=3,
                color=color_for(i),
                label=method,
            )
        ticks = sorted({p.proxies_per_class for p in metric_points})
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel("proxies per class")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs proxies per class")
        ax.grid(alpha=0.3)
        _legend(ax)
    fig.suptitle(title)
    return fig


def _single_count_panel(
    ax: Any, metric: str, points: Sequence[SweepPoint], methods: Sequence[str]
) -> None:
    """One number of proxies for every method: a line against it would be a lone point on an
    axis with one tick, so each method is a bar (error bar: 95% t-interval, none with one
    seed) and the title names the one value, which is no sweep."""
    count = points[0].proxies_per_class
    for i, method in enumerate(methods):
        (point,) = [p for p in points if p.method == method][:1]
        err = np.array(point.error).reshape(2, 1)
        ax.bar(i, point.mean, yerr=err, capsize=4, color=color_for(i), label=method)
    ax.set_xticks(range(len(methods)), list(methods), rotation=20, ha="right")
    ax.set_xlabel(f"method (all at {count:g} proxies per class)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} at {count:g} proxies per class (one value: no sweep)")
    ax.grid(alpha=0.3, axis="y")


@dataclass(frozen=True)
class RetrievalBlock:
    """One method's retrievals (from its run's retrievals.npz) for the qualitative figure."""

    label: str
    query_images: np.ndarray  # (Q, H, W, C) uint8
    neighbor_images: np.ndarray  # (Q, K, H, W, C) uint8
    query_labels: np.ndarray  # (Q,)
    neighbor_labels: np.ndarray  # (Q, K)
    #: class names as the run recorded them (Q,) and (Q, K); None in older records (then ids)
    query_classes: np.ndarray | None = None
    neighbor_classes: np.ndarray | None = None

    def class_of(self, q: int, j: int | None = None) -> str:
        """The class shown under a query (``j`` None) or its ``j``-th neighbour."""
        names = self.query_classes if j is None else self.neighbor_classes
        labels = self.query_labels if j is None else self.neighbor_labels
        index = (q,) if j is None else (q, j)
        if names is not None:
            return str(names[index])
        return f"class {int(labels[index])}"


def retrieval_figure(
    blocks: Sequence[RetrievalBlock], n_queries: int = 3, top_k: int = 5, title: str = ""
) -> Figure:
    """Query images and their top-k neighbours, one row block per method.

    A neighbour gets a green frame when it shares the query's class, a red one otherwise; the
    query gets a black frame. Each image is captioned with its class, so a near-duplicate class
    (the same character in a look-alike font) can be told from a real error. The same seed draws the same queries for every method, so row blocks
    are directly comparable.
    """
    n_q = max(1, min([n_queries, *(len(b.query_images) for b in blocks)]))
    k = max(1, min([top_k, *(b.neighbor_images.shape[1] for b in blocks)]))
    n_rows = max(1, n_q * len(blocks))
    fig = Figure(figsize=(1.25 * (k + 1) + 1.2, 1.3 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, k + 1, squeeze=False)
    for b, block in enumerate(blocks):
        for q in range(n_q):
            row = axes[b * n_q + q]
            _image_cell(row[0], block.query_images[q], "black")
            row[0].set_xlabel(block.class_of(q), fontsize="x-small")
            row[0].set_ylabel(
                f"{block.label}\nquery {q + 1}",
                fontsize="small",
                rotation=0,
                ha="right",
                va="center",
            )
            if b == 0 and q == 0:
                row[0].set_title("query", fontsize="small")
            for j in range(k):
                correct = bool(block.neighbor_labels[q, j] == block.query_labels[q])
                _image_cell(
                    row[j + 1], block.neighbor_images[q, j], "#1a9e1a" if correct else "#d62728"
                )
                row[j + 1].set_xlabel(block.class_of(q, j), fontsize="x-small")
                if b == 0 and q == 0:
                    row[j + 1].set_title(f"#{j + 1}", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _image_cell(ax: Any, image: np.ndarray, frame_color: str) -> None:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(frame_color)
        spine.set_linewidth(3)
