"""Synthetic run folders that follow results/README.md, for report tests."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dml_bench.report.paper_numbers import SPEEDUP_CLAIM, SPEEDUP_SHORT
from dml_bench.report.runs import Prepared, prepare
from dml_bench.report.text import FORMATTERS
from dml_bench.store.read import RunTable, load_runs

RunWriter = Callable[..., Path]

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: Phrases of sentences that quote the paper rather than a measured value.
_FIXED_PHRASES = (
    SPEEDUP_CLAIM.text,
    SPEEDUP_CLAIM.where,
    SPEEDUP_SHORT,
    "the 5% level",
)


def _leaves(obj: object) -> list[object]:
    if dataclasses.is_dataclass(obj):
        return [x for f in dataclasses.fields(obj) for x in _leaves(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _leaves(v)]
    if isinstance(obj, (tuple, list)):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


def assert_numbers_come_from_fields(finding: object) -> None:
    """Every number in the finding's sentence is one of its own values, formatted."""
    text = finding.sentence()  # type: ignore[attr-defined]
    strings = [v for v in _leaves(finding) if isinstance(v, str) and v]
    for s in sorted(strings, key=len, reverse=True) + list(_FIXED_PHRASES):
        text = text.replace(s, " ")
    allowed = set()
    for value in _leaves(finding):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for fmt in (*FORMATTERS, str):
                allowed.update(_NUMBER.findall(fmt(value)))
    found = _NUMBER.findall(text)
    assert found, finding
    assert set(found) <= allowed, (set(found) - allowed, finding.sentence())  # type: ignore[attr-defined]


def with_roles(table: RunTable, method: str, count_field: str | None, assignment: str) -> RunTable:
    """The run table as records that carry ``method``'s roles read it (columns
    ``proxy_count_field`` and ``proxy_assignment``; other methods' roles stay unrecorded)."""
    runs = table.runs.copy()
    mine = runs["method"] == method
    runs["proxy_count_field"] = np.where(mine, count_field, None)
    runs["proxy_assignment"] = np.where(mine, assignment, None)
    return dataclasses.replace(table, runs=runs)


def table_lines(block: str) -> list[str]:
    """The data rows of the Markdown table in ``block`` (header and rule dropped)."""
    return [line for line in block.splitlines() if line.startswith("|")][2:]


def write_run(
    root: Path,
    *,
    method: str,
    dataset: str = "hershey",
    seed: int = 0,
    columns: Mapping[str, Sequence[float]],
    steps: Sequence[int] | None = None,
    elapsed: Sequence[float] | None = None,
    variant: str | None = None,
    method_config: Mapping[str, Any] | None = None,
    sampler: str = "random",
    status: str = "completed",
    run_id: str | None = None,
    retrievals: bool = False,
    record: Mapping[str, Any] | None = None,
) -> Path:
    """Write one run folder; ``columns`` are metrics.csv columns besides step/elapsed_s;
    ``record``: more config.json keys (e.g. the method's ``family``)."""
    n = len(next(iter(columns.values())))
    steps = list(steps) if steps is not None else [100 * i for i in range(n)]
    elapsed = list(elapsed) if elapsed is not None else [0.5 * s for s in steps]
    variant = variant or method
    run_id = run_id or f"{dataset}-{variant}-seed{seed}-abc"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    config = {
        "run_id": run_id,
        "method": method,
        "variant": variant,
        "dataset": dataset,
        "seed": seed,
        "sampler": sampler,
        "batch_size": 32,
        "method_config": dict(method_config or {"m_per_class": None, "loss_lr": None}),
        "dataset_config": {"root": "data"},
        **dict(record or {}),
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "env.json").write_text(json.dumps({"python": "3.11", "device": "cpu"}))
    (run_dir / "status.json").write_text(
        json.dumps(
            {"status": status, "reason": "", "step": steps[-1], "updated": "2024-01-01T00:00:00"}
        )
    )
    frame = pd.DataFrame(
        {
            "step": steps,
            "epoch": [s / 100 for s in steps],
            "elapsed_s": elapsed,
            "eval_s": [0.1] * n,
            "train_loss": [np.nan] + [1.0] * (n - 1),
            **columns,
        }
    )
    frame.to_csv(run_dir / "metrics.csv", index=False)
    final = {k: float(v[-1]) for k, v in columns.items()}
    summary = {
        "run_id": run_id,
        "method": method,
        "variant": variant,
        "dataset": dataset,
        "seed": seed,
        "status": status,
        "steps": steps[-1],
        "train_seconds": elapsed[-1],
        "final": final,
        "best": final,
        "best_step": steps[-1],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if retrievals:
        rng = np.random.default_rng(seed)
        q, k, h = 4, 6, 16
        np.savez(
            run_dir / "retrievals.npz",
            query_images=rng.integers(0, 255, (q, h, h, 3), dtype=np.uint8),
            neighbor_images=rng.integers(0, 255, (q, k, h, h, 3), dtype=np.uint8),
            query_labels=np.arange(q),
            neighbor_labels=np.tile(np.arange(q)[:, None], (1, k)) + (np.arange(k) % 2),
            query_indices=np.arange(q),
        )
    return run_dir


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    return out


@pytest.fixture
def make_run(results: Path) -> RunWriter:
    def _make(**kwargs: Any) -> Path:
        return write_run(results, **kwargs)

    return _make


def recall_curve(final: float, n: int = 9, rate: float = 0.5) -> list[float]:
    """A saturating curve from 0.1 to ``final``: larger ``rate`` converges faster."""
    t = np.arange(n)
    return list(0.1 + (final - 0.1) * (1 - np.exp(-rate * t)) / (1 - np.exp(-rate * (n - 1))))


@pytest.fixture
def benchmark_runs(make_run: RunWriter) -> dict[str, Any]:
    """A small benchmark: proxy_nca (fast) and triplet_semihard (slow), 3 seeds, on hershey,
    plus a proxy_nca_dynamic sweep and an interrupted and a broken run."""
    finals = {"proxy_nca": [0.60, 0.62, 0.61], "triplet_semihard": [0.50, 0.53, 0.52]}
    rates = {"proxy_nca": 1.0, "triplet_semihard": 0.3}
    for method, values in finals.items():
        for seed, final in enumerate(values):
            r1 = recall_curve(final, rate=rates[method] + 0.1 * seed)
            cols: dict[str, list[float]] = {
                "recall@1": r1,
                "recall@2": [min(1.0, v + 0.1) for v in r1],
                "nmi": [0.3 + v / 2 for v in r1],
            }
            if method == "proxy_nca":
                n = len(r1)
                data = [2.0 - 0.1 * i for i in range(n)]
                cols["proxy_nca_loss"] = [d + 1.0 - 0.1 * i for i, d in enumerate(data)]
                cols["data_nca_loss"] = data
                cols["proxy_triplet_loss"] = [0.5] * n
                cols["data_triplet_loss"] = [0.4] * (n - 1) + [0.6]
                cols["eps_mean"] = [1.0 - 0.05 * i for i in range(n)]
                cols["eps_max"] = [1.4 - 0.05 * i for i in range(n)]
                cols["order_agreement"] = [0.6 + 0.03 * i + 0.01 * seed for i in range(n)]
                # the paper's bound, NCA form only (eval/bound.py's columns)
                cols["bound_alpha"] = [1 / 9] * n
                cols["bound_nca_data"] = data
                cols["bound_nca_proxy"] = cols["proxy_nca_loss"]
                cols["bound_nca_rhs"] = [d + 2.0 - 0.1 * i for i, d in enumerate(data)]
                cols["bound_nca_log_term"] = [2.0] * n
                cols["bound_nca_eps_term"] = [4 * e for e in cols["eps_max"]]
                cols["bound_nca_held_paper"] = [1.0] * n
                cols["bound_nca_held_paper_no_eps"] = [0.9 - 0.1 * seed] * n
                cols["bound_nca_held_plain"] = [0.5] * n
                cols["bound_nca_held_paper_on_mean"] = [1.0] * (n - 1) + [float(seed != 2)]
            make_run(
                method=method,
                seed=seed,
                columns=cols,
                retrievals=True,
                method_config={
                    "m_per_class": None if method == "proxy_nca" else 4,
                    "proxies_per_class": 1,
                },
                sampler="random" if method == "proxy_nca" else "m_per_class:4",
            )
    for ppc, final in ((0.5, 0.55), (1.0, 0.58), (2.0, 0.57)):
        for seed in (0, 1):
            make_run(
                method="proxy_nca_dynamic",
                seed=seed,
                variant=f"proxy_nca_dynamic[proxies_per_class={ppc}]",
                method_config={"m_per_class": None, "proxies_per_class": ppc},
                columns={
                    "recall@1": recall_curve(final + 0.01 * seed),
                    "nmi": [0.5] * 8 + [0.6 + 0.01 * seed],
                    "proxies_in_use": [8.0] * 8 + [10.0 + seed],
                    "shared_proxy_pairs": [0.5] * 8 + [0.05 * (seed + 1)],
                },
            )
    make_run(method="proxy_nca", seed=7, status="interrupted", columns={"recall@1": [0.1, 0.2]})
    broken = make_run(method="triplet_semihard", seed=8, columns={"recall@1": [0.1, 0.2]})
    (broken / "config.json").write_text("{not json")
    return {"finals": finals}


@pytest.fixture
def prep(results: Path, benchmark_runs: dict[str, Any]) -> Prepared:
    return prepare(load_runs(results))
