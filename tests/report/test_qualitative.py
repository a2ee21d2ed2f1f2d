"""The qualitative figure: which methods get a block, and in which order."""

from __future__ import annotations

from dml_bench.report import qualitative
from dml_bench.report.runs import Prepared, prepare
from dml_bench.store.read import load_runs


def test_figure_blocks_per_method(prep: Prepared) -> None:
    (found,) = qualitative.findings(prep)
    assert found.seed == 0
    assert [b.label for b in found.blocks] == ["proxy_nca", "triplet_semihard"]
    section = qualitative.section([found], n_queries=2, top_k=3)
    fig = section.figures["qualitative_hershey"]
    assert len(fig.axes) == 2 * 2 * 4  # proxy_nca and triplet_semihard have retrievals


def test_shows_the_plain_methods_before_sweep_variants(make_run, results) -> None:
    variants = [f"proxy_nca[proxies_per_class={k}]" for k in (2, 4, 8, 16, 32, 64)]
    for variant in [*variants, "proxy_nca", "triplet_semihard"]:
        make_run(
            method=variant.split("[")[0],
            variant=variant,
            seed=0,
            columns={"recall@1": [0.1, 0.5]},
            retrievals=True,
        )
    found = qualitative.findings(prepare(load_runs(results)), max_methods=3)
    fig = qualitative.section(found, n_queries=1, top_k=2).figures["qualitative_hershey"]
    rows = [ax.get_ylabel().split("\n")[0] for ax in fig.axes if ax.get_ylabel()]
    # the plain methods, then the first variant in the report's label order (string order)
    assert rows == ["proxy_nca", "triplet_semihard", "proxy_nca[proxies_per_class=16]"]


def test_no_retrievals_no_figure(make_run, results) -> None:
    make_run(method="proxy_nca", seed=0, columns={"recall@1": [0.1, 0.5]})
    prep = prepare(load_runs(results))
    assert qualitative.findings(prep) == []
    section = qualitative.section([])
    assert not section.figures and "no figure" in section.body[-1]
