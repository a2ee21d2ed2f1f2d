"""The main table: grouping, means/stds against hand computation, and the four formats."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from dml_bench.errors import UserError
from dml_bench.report.tables import eval_metrics, main_table, render, with_labels
from dml_bench.store.read import load_runs


def test_eval_metrics_order() -> None:
    cols = [
        "nmi",
        "recall@10",
        "map@r",
        "recall@1",
        "val_recall@1",
        "p@1",
        "eps_max",
        "r_precision",
        "recall@2",
    ]
    assert eval_metrics(cols) == [
        "recall@1",
        "recall@2",
        "recall@10",
        "nmi",
        "p@1",
        "r_precision",
        "map@r",
    ]


def test_json_table_matches_hand_computed_means_and_stds(results, benchmark_runs) -> None:
    table = main_table(load_runs(results).runs)
    records = json.loads(render(table, "json"))
    by_method = {r["method"]: r for r in records}
    for method, finals in benchmark_runs["finals"].items():
        rec = by_method[method]
        assert rec["dataset"] == "hershey" and rec["n_seeds"] == len(finals)
        assert rec["recall@1_mean"] == pytest.approx(np.mean(finals))
        assert rec["recall@1_std"] == pytest.approx(np.std(finals, ddof=1))
        assert rec["recall@2_mean"] == pytest.approx(np.mean([min(1, f + 0.1) for f in finals]))
        assert rec["nmi_mean"] == pytest.approx(np.mean([0.3 + f / 2 for f in finals]))
    dyn = by_method["proxy_nca_dynamic[proxies_per_class=0.5]"]
    assert dyn["recall@2_mean"] is None and dyn["n_seeds"] == 2
    # sorted: proxy methods first, pair methods last
    assert records[-1]["method"] == "triplet_semihard"
    assert [r["method"] for r in records][0] == "proxy_nca"


def test_rows_split_by_sampler_only_when_a_variant_used_several(make_run, results) -> None:
    for seed, sampler, value in ((0, "random", 0.5), (1, "random", 0.7), (0, "m_per_class:4", 0.2)):
        make_run(
            method="proxy_nca",
            seed=seed,
            sampler=sampler,
            columns={"recall@1": [value]},
            run_id=f"r{seed}{sampler[0]}",
        )
    make_run(method="other", dataset="a_first", columns={"recall@1": [0.3]})
    table = main_table(load_runs(results).runs)
    assert "sampler" in table.columns
    assert list(table["dataset"]) == ["a_first", "hershey", "hershey"]
    random = table[(table["method"] == "proxy_nca") & (table["sampler"] == "random")].iloc[0]
    assert random["recall@1_mean"] == pytest.approx(0.6) and random["n_seeds"] == 2
    m4 = table[table["sampler"] == "m_per_class:4"].iloc[0]
    assert m4["recall@1_mean"] == pytest.approx(0.2) and np.isnan(m4["recall@1_std"])


def test_formats_round_trip_and_escape(results, benchmark_runs) -> None:
    table = main_table(load_runs(results).runs)
    csv = pd.read_csv(io.StringIO(render(table, "csv")))
    assert list(csv["method"]) == list(table["method"])
    assert csv["recall@1_mean"].to_numpy() == pytest.approx(table["recall@1_mean"].to_numpy())
    md = render(table, "markdown").strip().splitlines()
    assert len(md) == 2 + len(table) and "0.610 ± 0.010" in md[2]
    tex = render(table, "latex")
    assert r"proxy\_nca" in tex and r"$\pm$" in tex and "proxy_nca" not in tex
    with pytest.raises(UserError, match="markdown"):
        render(table, "html")


def test_runs_of_one_variant_with_other_run_options_are_not_averaged(make_run, results) -> None:
    """Two learning rates of proxy_nca are two rows, named by the option that differs; runs
    that agree on every option stay one row without a suffix."""
    for lr, finals in ((1e-3, (0.8, 0.82)), (1e-4, (0.5, 0.52))):
        for seed, final in enumerate(finals):
            run = make_run(
                method="proxy_nca",
                seed=seed,
                run_id=f"hershey-proxy_nca-seed{seed}-lr{lr}",
                columns={"recall@1": [0.1, final]},
            )
            config = json.loads((run / "config.json").read_text())
            config |= {"lr": lr, "steps": 600, "device": f"cuda:{seed}"}  # device: not a setup
            (run / "config.json").write_text(json.dumps(config))
    for seed in (0, 1):
        make_run(method="triplet_semihard", seed=seed, columns={"recall@1": [0.1, 0.6]})
    table = main_table(load_runs(results).runs)
    rows = dict(zip(table["method"], table["recall@1_mean"], strict=True))
    assert rows == pytest.approx(
        {"proxy_nca {lr=0.001}": 0.81, "proxy_nca {lr=0.0001}": 0.51, "triplet_semihard": 0.6}
    )
    labels = set(with_labels(load_runs(results).runs)["label"])
    assert labels == {"proxy_nca {lr=0.001}", "proxy_nca {lr=0.0001}", "triplet_semihard"}
