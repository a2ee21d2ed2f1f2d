"""The runs as every question reads them: labelled rows and curves, and each method's roles.

:func:`prepare` adds the row ``label`` (variant, plus run options and sampler where runs of one
variant differ, see :func:`dml_bench.report.tables.with_labels`) to runs and curves, and orders
curves the way tables and legends list methods. :class:`MethodRoles` says what each method is
for the questions (family, the config field that counts its proxies, static or dynamic
assignment); the roles come from what the runs recorded, else from the method's registered
:class:`~dml_bench.methods.base.MethodSpec` (older records), so no question names a method.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dml_bench.report.tables import with_labels
from dml_bench.store.read import RunTable

if TYPE_CHECKING:
    from dml_bench.methods.base import MethodSpec

#: Ranges of what the report averages: every metric, ``held`` and order agreement are fractions;
#: steps and seconds to a target are non-negative (intervals are clipped to them, see mean_ci).
FRACTION = (0.0, 1.0)
NONNEGATIVE = (0.0, math.inf)

#: Run-table columns that record a method's roles (see :class:`MethodRoles`); runs written
#: before they existed get the roles of the method's registered spec.
ROLE_COLUMNS = ("proxy_count_field", "proxy_assignment")
CONFIG_PREFIX = "cfg."


@dataclass(frozen=True)
class MethodRoles:
    """What a method is for the questions, as its :class:`MethodSpec` declares it.

    ``family``: ``"proxy"`` or ``"pair"`` (RQ2's speed-up, RQ4's tests). ``proxy_count_field``:
    the config field that counts its proxies (RQ5's x-axis). ``proxy_assignment``: ``"static"``
    or ``"dynamic"`` (RQ5's two sides). A method takes part in RQ5 when it has both.
    """

    family: str
    proxy_count_field: str | None = None
    proxy_assignment: str | None = None

    @property
    def count_column(self) -> str | None:
        field = self.proxy_count_field
        return None if field is None else CONFIG_PREFIX + field


@dataclass(frozen=True)
class Group:
    """Runs that may be compared with each other: they share the comparison key
    (:func:`dml_bench.store.records.comparison_key`: everything but the method and its config).

    ``name`` is the dataset's name when all its runs share one key, else the dataset and the key
    values that set this group apart (``hershey (steps=100)``); ``differs`` holds those values,
    ``key`` the whole comparison key its runs share (what a "run this" hint must reproduce).
    """

    name: str
    dataset: str
    differs: Mapping[str, Any]
    labels: tuple[str, ...]
    key: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    """Runs and curves with ``label`` and ``group`` columns, the comparable groups, the roles of
    every method that ran, and the runs left out as repeats of a seed (``repeats``)."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    table: RunTable
    roles: Mapping[str, MethodRoles]
    group_list: tuple[Group, ...] = ()
    repeats: tuple[str, ...] = ()

    @property
    def groups(self) -> list[str]:
        """The names of the comparable groups (see :class:`Group`): every question compares
        methods only within one of them."""
        return [g.name for g in self.group_list]

    @property
    def datasets(self) -> list[str]:
        return self.groups

    def group(self, name: str) -> Group:
        return next(g for g in self.group_list if g.name == name)

    def dataset_of(self, name: str) -> str:
        """The dataset a group's runs are on (for commands and the paper's numbers)."""
        return self.group(name).dataset if name in self.groups else name

    @property
    def headline_labels(self) -> frozenset[str]:
        """Labels the prose answers are about (tables hold all): see :func:`headline_labels`."""
        return headline_labels(self.runs, self.roles)


def prepare(table: RunTable) -> Prepared:
    runs, repeats = one_per_seed(with_labels(table.runs))
    groups = comparison_groups(runs)
    runs["group"] = group_names(runs, groups)
    labels = runs.set_index("run_id")["label"]
    names = runs.set_index("run_id")["group"]
    curves = table.curves[table.curves["run_id"].isin(set(runs["run_id"]))].copy()
    curves["label"] = curves["run_id"].map(labels)
    curves["group"] = curves["run_id"].map(names)
    order = {lab: i for i, lab in enumerate(label_order(runs))}
    curves = curves.assign(_o=curves["label"].map(order)).sort_values(["_o", "run_id", "step"])
    return Prepared(
        runs=runs,
        curves=curves.drop(columns="_o"),
        table=table,
        roles=method_roles(runs),
        group_list=tuple(groups),
        repeats=tuple(repeats),
    )


# ---------------------------------------------------------------- comparable groups, seeds
def _keys(runs: pd.DataFrame) -> list[dict[str, Any]]:
    if "comparable" not in runs.columns:  # a run table from before the key was read
        return [{"dataset": d} for d in runs["dataset"]]
    return [
        json.loads(text) if isinstance(text, str) else {"dataset": d}
        for text, d in zip(runs["comparable"], runs["dataset"], strict=True)
    ]


def comparison_groups(runs: pd.DataFrame) -> list[Group]:
    """The comparable groups of ``runs``, by dataset, then by the values that set them apart."""
    keys = _keys(runs)
    out: list[Group] = []
    for dataset in sorted(runs["dataset"].unique()):
        mine = [(i, k) for i, k in enumerate(keys) if runs["dataset"].iloc[i] == dataset]
        distinct = {json.dumps(k, sort_keys=True, default=str): k for _, k in mine}
        names = sorted({n for k in distinct.values() for n in k})
        differing = [n for n in names if len({repr(k.get(n)) for k in distinct.values()}) > 1]
        short = {n: _short_names([k.get(n) for k in distinct.values()]) for n in differing}
        for text, key in sorted(distinct.items()):
            differs = {n: key.get(n) for n in differing}
            shown = ", ".join(f"{n}={short[n][str(v)]}" for n, v in differs.items())
            rows = [i for i, k in mine if json.dumps(k, sort_keys=True, default=str) == text]
            labels = tuple(dict.fromkeys(label_order(runs.iloc[rows])))
            out.append(
                Group(
                    f"{dataset} ({shown})" if shown else str(dataset),
                    str(dataset),
                    differs,
                    labels,
                    key,
                )
            )
    return out


def group_names(runs: pd.DataFrame, groups: Sequence[Group]) -> list[str]:
    """Per run, the name of its comparable group."""
    names = []
    for key, dataset in zip(_keys(runs), runs["dataset"], strict=True):
        match = [g for g in groups if g.dataset == dataset and _in_group(key, g)]
        names.append(match[0].name)
    return names


def _in_group(key: Mapping[str, Any], group: Group) -> bool:
    return all(repr(key.get(n)) == repr(v) for n, v in group.differs.items())


def _short_names(values: Sequence[Any]) -> dict[str, str]:
    """Each value of one key entry as group names show it: a path by as few of its last parts
    as tell it from the other values (``a.csv``; ``one/data.csv`` and ``two/data.csv`` when both
    files are ``data.csv``), anything else as it is. Two groups never share a name."""
    texts = sorted({str(v) for v in values})
    depth = max((t.count("/") for t in texts), default=0) + 1
    for parts in range(1, depth + 1):
        shown = {t: "/".join(t.split("/")[-parts:]) for t in texts}
        if len(set(shown.values())) == len(texts):
            return shown
    return {t: t for t in texts}


def one_per_seed(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep one run per (label, comparable key, seed): the newest (status.json's ``updated``,
    then the folder name), so that a rerun of a seed is never pooled with the first run as an
    independent sample (a 95% interval assumes independent seeds). Returns the runs kept and the
    run ids left out."""
    if runs.empty:
        return runs.copy(), []
    keys = ["label", "seed"] + (["comparable"] if "comparable" in runs.columns else [])
    finished = runs["finished"] if "finished" in runs.columns else pd.Series("", index=runs.index)
    ordered = runs.assign(_f=finished.fillna("").astype(str)).sort_values(["_f", "run_id"])
    kept = ordered.drop_duplicates(subset=keys, keep="last")
    repeats = sorted(set(runs["run_id"]) - set(kept["run_id"]))
    return runs[runs["run_id"].isin(set(kept["run_id"]))].copy(), repeats


def label_order(runs: pd.DataFrame) -> list[str]:
    """Labels as tables list them: proxy methods first, then by method, variant and sampler."""
    ordered = runs.assign(_pair=(runs["family"] != "proxy").astype(int))
    ordered = ordered.sort_values(["_pair", "method", "variant", "sampler"], kind="stable")
    return list(dict.fromkeys(ordered["label"]))


def headline_labels(runs: pd.DataFrame, roles: Mapping[str, MethodRoles]) -> frozenset[str]:
    """The paper's method as the runs hold it: runs of a static-assignment proxy method with no
    swept method parameter (``proxy_nca``, or a plugin that declares the same role), under the
    labels they got. The paper's headline set-up is static assignment (docs/protocol.md, "Paper
    training set-up"); dynamic assignment is RQ5's variation."""
    if runs.empty:
        return frozenset()
    static = [
        str(m) in roles and roles[str(m)].proxy_assignment == "static" for m in runs["method"]
    ]
    plain = (runs["variant"] == runs["method"]) & pd.Series(static, index=runs.index)
    return frozenset(runs.loc[plain, "label"])


# ---------------------------------------------------------------- roles
def method_roles(runs: pd.DataFrame) -> dict[str, MethodRoles]:
    """Each method's roles: as its runs recorded them (the :data:`ROLE_COLUMNS`), else, for
    runs recorded before roles were (all role columns empty), as its registered spec says."""
    roles = {}
    for method, group in runs.groupby("method", sort=True):
        family = str(group["family"].iloc[0])
        recorded = {c: _recorded(group, c) for c in ROLE_COLUMNS}
        if any(v is not None for v in recorded.values()):
            roles[str(method)] = MethodRoles(family, **recorded)
        else:
            roles[str(method)] = _registered_roles(str(method), family)
    return roles


def _recorded(group: pd.DataFrame, column: str) -> str | None:
    if column not in group.columns:
        return None
    values = group[column].dropna()
    return None if values.empty else str(values.iloc[0])


def _registered_roles(method: str, family: str) -> MethodRoles:
    spec = _registered_spec(method)
    if spec is None:
        return MethodRoles(family)
    return MethodRoles(family, spec.proxy_count_field, spec.proxy_assignment)


def _registered_spec(method: str) -> MethodSpec[Any] | None:
    from dml_bench.methods import METHODS

    return METHODS.get(method) if method in METHODS.names() else None


def _registered_defaults(method: str) -> dict[str, Any]:
    spec = _registered_spec(method)
    if spec is None:
        return {}
    return {k: v for k, v in vars(spec.default_config()).items()}


# ---------------------------------------------------------------- proxy-count sweeps
def proxy_count(runs: pd.DataFrame, roles: Mapping[str, MethodRoles]) -> pd.Series:
    """Per run, the number of proxies its config recorded (its method's count field), NaN for
    a method without one or a run that did not record it."""
    out = pd.Series(math.nan, index=runs.index, dtype=float)
    for i, method in runs["method"].items():
        column = roles[str(method)].count_column if str(method) in roles else None
        if column is not None and column in runs.columns:
            out[i] = _as_float(runs.at[i, column])
    return out


def sweep_series(runs: pd.DataFrame, roles: Mapping[str, MethodRoles]) -> pd.Series:
    """Per run, the line of the RQ5 figure it belongs to: runs of one method that differ only in
    their number of proxies share a line, runs that differ in anything else are other lines.

    The line is the run's label without its proxy count: the method and the fields the run
    swept (the ``swept`` column, JSON of ``{field: value}``) other than its count field, then the
    run options and sampler of the row label, if any. So ``proxy_nca[proxies_per_class=2]`` is on
    the line ``proxy_nca`` and ``proxy_nca[m_per_class=4,proxies_per_class=2]`` on the line
    ``proxy_nca[m_per_class=4]``. Run tables without a ``swept`` column name the fields from the
    recorded config instead (see :func:`_config_series`).
    """
    names = pd.Series("", index=runs.index, dtype=object)
    for method, group in runs.groupby("method", sort=False):
        role = roles.get(str(method))
        count = role.proxy_count_field if role is not None else None
        if "swept" in group.columns and group["swept"].notna().all():
            for i, text in group["swept"].items():
                swept = {k: v for k, v in json.loads(str(text)).items() if k != count}
                names[i] = variant_label(str(method), swept) + _row_suffix(group.loc[i])
        else:
            names[group.index] = _config_series(group, str(method), count)
    return names


def variant_label(method: str, fields: Mapping[str, Any]) -> str:
    """``method[f=v,...]`` over ``fields`` (sorted), or the plain method name without any: the
    form of the variant labels the runs record."""
    label = ",".join(f"{k}={fields[k]}" for k in sorted(fields))
    return f"{method}[{label}]" if label else method


def _config_series(group: pd.DataFrame, method: str, count: str | None) -> pd.Series:
    """Line names of one method's runs from their ``cfg.*`` columns: the fields other than the
    count in which its runs differ, where a run's value is not the registered default."""
    config = [c for c in group.columns if c.startswith(CONFIG_PREFIX)]
    fields = [c for c in config if c != (None if count is None else CONFIG_PREFIX + count)]
    cells = group[fields].map(_cell) if fields else pd.DataFrame(index=group.index)
    differing = [c for c in fields if cells[c].nunique() > 1]
    defaults = _registered_defaults(method)
    names = pd.Series("", index=group.index, dtype=object)
    for i in group.index:
        shown = {
            c[len(CONFIG_PREFIX) :]: cells.at[i, c]
            for c in differing
            if not _is_default(group.at[i, c], defaults, c[len(CONFIG_PREFIX) :])
        }
        names[i] = variant_label(method, shown) + _row_suffix(group.loc[i])
    return names


def _row_suffix(row: pd.Series) -> str:
    suffix = str(row.get("setup_label", "") or "")
    if bool(row.get("split_sampler", False)):
        suffix += f" [{row['sampler']}]"
    return suffix


def _cell(value: Any) -> str:
    if _missing(value):
        return "None"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _is_default(value: Any, defaults: Mapping[str, Any], field: str) -> bool:
    if field not in defaults:
        return False
    default = defaults[field]
    if _missing(value) or default is None:
        return _missing(value) and default is None
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return _as_float(value) == float(default)
    return str(value) == str(default)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------- small frame helpers
def has(frame: pd.DataFrame, *columns: str) -> bool:
    """Whether every column exists and holds at least one value."""
    return all(c in frame.columns and frame[c].notna().any() for c in columns)


def quarters(curve: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows in the first and in the last quarter of the run's step range."""
    lo, hi = float(curve["step"].min()), float(curve["step"].max())
    quarter = (hi - lo) / 4
    return curve[curve["step"] <= lo + quarter], curve[curve["step"] >= hi - quarter]


def nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values, NaN when there are none (no warning)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan
