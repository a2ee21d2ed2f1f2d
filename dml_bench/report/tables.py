"""The main results table: one row per (method variant, dataset[, sampler]), mean and std.

Rows are split by sampler only when runs of the same variant on the same dataset used different
samplers (docs/protocol.md, "Batch composition": the sampler can invert the convergence comparison, so
such runs must not be averaged together). Final metrics are the last row of each run's
metrics.csv. Standard deviations are sample standard deviations (ddof=1; NaN for one seed).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from dml_bench.errors import UserError
from dml_bench.report.text import format_mean_std, markdown_table

FORMATS = ("markdown", "csv", "json", "latex")
FORMAT_SUFFIX = {"markdown": "md", "csv": "csv", "json": "json", "latex": "tex"}

_RECALL = re.compile(r"^recall@(\d+)$")
_OTHER_METRICS = ("nmi", "p@1", "r_precision", "map@r")


class UnknownFormatError(UserError):
    """``--format`` named a table format we do not write."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UnknownFormatError(
            f"Unknown report format {fmt!r}. Valid formats are: {', '.join(FORMATS)} "
            "(e.g. `dml-bench report --format latex`)."
        )
    return fmt


def eval_metrics(columns: Iterable[str]) -> list[str]:
    """The test-set retrieval/clustering metrics among ``columns``, in reading order.

    Recall@K by K, then NMI, P@1, R-Precision, MAP@R. Validation (``val_*``) and diagnostic
    columns are left out: the table answers RQ4 on the held-out test classes.
    """
    cols = list(columns)
    recalls = sorted((c for c in cols if _RECALL.match(c)), key=lambda c: int(c.split("@")[1]))
    return recalls + [c for c in _OTHER_METRICS if c in cols]


def setup_labels(runs: pd.DataFrame) -> pd.Series:
    """Per run, ``" {key=value, ...}"`` naming the run options in which runs of the same variant
    and dataset differ, or ``""`` where they all agree (the usual case: nothing is added). The
    method's code hash counts as such an option (``code=<hash>``): runs of edited code are
    another row, never pooled with the old code's."""
    labels = pd.Series("", index=runs.index, dtype=object)
    if runs.empty or "setup" not in runs.columns:
        return labels
    for _, group in runs.groupby(["variant", "dataset"]):
        setups = {i: _setup_with_code(group.loc[i]) for i in group.index}
        if len({json.dumps(s, sort_keys=True, default=str) for s in setups.values()}) < 2:
            continue
        keys = sorted({k for setup in setups.values() for k in setup})
        differing = [k for k in keys if len({repr(s.get(k)) for s in setups.values()}) > 1]
        for i, setup in setups.items():
            labels[i] = " {" + ", ".join(f"{k}={setup.get(k)}" for k in differing) + "}"
    return labels


def _setup_with_code(row: pd.Series) -> dict[str, Any]:
    setup: dict[str, Any] = json.loads(str(row["setup"]))
    code = row.get("source_hash")
    if isinstance(code, str):
        setup["code"] = code[:8] or "unrecorded"
    return setup


def with_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``split_sampler``, ``setup_label`` and ``label``: the variant, plus the run options
    in which its runs differ (``proxy_nca {lr=0.0001}``, see
    :func:`setup_labels`), plus the sampler where rows split by it."""
    out = runs.copy()
    if out.empty:
        out["split_sampler"] = pd.Series(dtype=bool)
        out["setup_label"] = pd.Series(dtype=str)
        out["label"] = pd.Series(dtype=str)
        return out
    out["setup_label"] = setup_labels(out)
    n_samplers = out.groupby(["variant", "dataset", "setup_label"])["sampler"].transform("nunique")
    out["split_sampler"] = n_samplers > 1
    out["label"] = [
        f"{v}{setup} [{s}]" if split else f"{v}{setup}"
        for v, setup, s, split in zip(
            out["variant"], out["setup_label"], out["sampler"], out["split_sampler"], strict=True
        )
    ]
    return out


def sort_key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by dataset, then proxy methods first, then variant, run options and sampler."""
    order = frame.assign(_pair=(frame["family"] != "proxy").astype(int))
    keys = ["dataset", "_pair", "method", "variant", "setup_label", "sampler"]
    order = order.sort_values(keys, kind="stable")
    return order.drop(columns="_pair")


def main_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every final test metric, per row group (see module doc)."""
    labelled = with_labels(runs)
    metrics = eval_metrics(runs.columns)
    split = bool(labelled["split_sampler"].any()) if not labelled.empty else False
    keys = ["variant", "setup_label", "dataset"] + (["sampler"] if split else [])
    records: list[dict[str, Any]] = []
    for _, group in sort_key_frame(labelled).groupby(keys, sort=False):
        first = group.iloc[0]
        record: dict[str, Any] = {
            "method": first["variant"] + first["setup_label"],
            "dataset": first["dataset"],
        }
        if split:
            record["sampler"] = first["sampler"]
        record["family"] = first["family"]
        record["n_seeds"] = int(group["seed"].nunique())
        for metric in metrics:
            values = group[metric].astype(float)
            record[f"{metric}_mean"] = float(values.mean())
            record[f"{metric}_std"] = float(values.std(ddof=1)) if values.count() > 1 else math.nan
        records.append(record)
    columns = ["method", "dataset"] + (["sampler"] if split else []) + ["family", "n_seeds"]
    columns += [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    return pd.DataFrame(records, columns=columns)


def table_metrics(table: pd.DataFrame) -> list[str]:
    return [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]


def render(table: pd.DataFrame, fmt: str) -> str:
    """The table as text in ``fmt`` (markdown, csv, json or latex)."""
    check_format(fmt)
    if fmt == "csv":
        return str(table.to_csv(index=False))
    if fmt == "json":
        return json.dumps(table_records(table), indent=2) + "\n"
    header, rows = _display_cells(table)
    if fmt == "markdown":
        return _markdown(header, rows)
    return _latex(header, rows)


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records; NaN (e.g. the std of one seed) becomes ``null``."""
    records = []
    for record in table.to_dict(orient="records"):
        records.append({k: _json_value(v) for k, v in record.items()})
    return records


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _json_value(value.item())
    return value


def _display_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    metrics = table_metrics(table)
    keys = [c for c in ("method", "dataset", "sampler") if c in table.columns]
    header = keys + ["seeds"] + metrics
    rows = []
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in keys] + [str(int(row["n_seeds"]))]
        cells += [format_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        rows.append(cells)
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    n_text = sum(1 for h in header if h in ("method", "dataset", "sampler"))
    align = [":---" if i < n_text else "---:" for i in range(len(header))]
    return markdown_table(header, rows, align) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$")


def _latex(header: list[str], rows: list[list[str]]) -> str:
    n_text = sum(1 for h in header if h in ("method", "dataset", "sampler"))
    spec = "l" * n_text + "r" * (len(header) - n_text)
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        "\\midrule",
        *(" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    return "\n".join(lines) + "\n"
