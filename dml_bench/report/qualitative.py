"""The qualitative figure: the top retrievals of a few test queries, one block per method.

:func:`findings` picks, per dataset, the first seed at which some method saved its retrievals
(``retrievals.npz``) and the methods to show (those run as registered first, then variants), so
every block shows the same queries; :func:`section` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dml_bench.report import plots
from dml_bench.report.runs import Prepared, label_order
from dml_bench.report.section import Section
from dml_bench.store.read import read_retrievals


@dataclass(frozen=True)
class RetrievalFinding:
    """What the figure of one dataset shows: the seed its queries were drawn with, the blocks."""

    dataset: str
    seed: int
    blocks: list[plots.RetrievalBlock]


def shown_labels(runs: pd.DataFrame) -> list[str]:
    """The methods as registered (no changed parameters) first, then their variants: with a
    sweep in the results, the figure still shows the proxy methods beside the pair baselines."""
    labels = label_order(runs)
    plain = set(runs.loc[runs["variant"] == runs["method"], "label"])
    return [lab for lab in labels if lab in plain] + [lab for lab in labels if lab not in plain]


def _blocks_for_seed(
    prep: Prepared, runs: pd.DataFrame, max_methods: int
) -> list[plots.RetrievalBlock]:
    blocks = []
    for label in shown_labels(runs)[:max_methods]:
        run_id = runs[runs["label"] == label]["run_id"].iloc[0]
        data = read_retrievals(prep.table.run_dir(str(run_id)))
        if data is None:
            continue
        blocks.append(
            plots.RetrievalBlock(
                label=label,
                query_images=data["query_images"],
                neighbor_images=data["neighbor_images"],
                query_labels=data["query_labels"],
                neighbor_labels=data["neighbor_labels"],
                query_classes=data.get("query_classes"),
                neighbor_classes=data.get("neighbor_classes"),
            )
        )
    return blocks


def findings(prep: Prepared, max_methods: int = 6) -> list[RetrievalFinding]:
    """Per dataset with readable retrievals: the first seed that has some, and its blocks."""
    found = []
    for dataset in prep.datasets:
        here = prep.runs[prep.runs["group"] == dataset]
        for seed in sorted(here["seed"].unique()):
            blocks = _blocks_for_seed(prep, here[here["seed"] == seed], max_methods)
            if blocks:
                found.append(RetrievalFinding(dataset, int(seed), blocks))
                break
    return found


def section(found: list[RetrievalFinding], n_queries: int = 3, top_k: int = 5) -> Section:
    out = Section("qualitative", "Qualitative retrievals")
    out.body.append(
        f"For {n_queries} test queries (drawn by the seed, so the same for every method), the "
        f"top-{top_k} retrievals of each method; green frame: same class as the query, red: "
        "another class. Each image is captioned with its class (for glyphs, font:character), "
        "so a look-alike glyph of another font can be told from a real error."
    )
    for f in found:
        out.figures[f"qualitative_{f.dataset}"] = plots.retrieval_figure(
            f.blocks,
            n_queries=n_queries,
            top_k=top_k,
            title=f"Retrievals on {f.dataset} (seed {f.seed})",
        )
    if not out.figures:
        out.body.append("No run has a readable retrievals.npz, so there is no figure.")
    return out
