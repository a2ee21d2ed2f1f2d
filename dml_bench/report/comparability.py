"""Which runs the report compares: the comparable groups, and the repeats of a seed left out.

Methods are compared only within a comparable group: runs that share everything but the method
and its config (:func:`dml_bench.store.records.comparison_key`). :func:`findings` says which
groups exist, what sets them apart, and which methods are therefore never compared;
:func:`section` writes it at the top of report.md, before any comparison.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any

from dml_bench.report.runs import Group, Prepared
from dml_bench.report.section import Section
from dml_bench.report.text import (
    SUGGESTED_DATASET,
    SUGGESTED_PAIR,
    SUGGESTED_PROXY,
    markdown_table,
    run_command,
)

SHARED = (
    "dataset and its parameters, steps, batch size, trunk, embedding size, optimiser and "
    "learning rate, image sizes, evaluation schedule and tuning budget: everything but the "
    "method and its own config"
)


@dataclass(frozen=True)
class DatasetGroups:
    """The comparable groups of one dataset, and the methods that share none of them."""

    dataset: str
    groups: list[Group]
    apart: list[tuple[str, str]]  # pairs of labels that are in no common group

    def sentence(self) -> str:
        if len(self.groups) == 1:
            return f"All runs on {self.dataset} share one set-up, so its methods are compared."
        fields = sorted({k for g in self.groups for k in g.differs})
        named = "; ".join(f"**{g.name}**: {', '.join(g.labels)}" for g in self.groups)
        text = (
            f"Runs on {self.dataset} differ in {', '.join(fields)}, so they form "
            f"{len(self.groups)} comparable groups and methods are compared only within one: "
            f"{named}."
        )
        if self.apart:
            pairs = ", ".join(f"{a} vs {b}" for a, b in self.apart)
            text += f" Not compared, because they never ran with the same set-up: {pairs}."
        return text


def findings(prep: Prepared) -> list[DatasetGroups]:
    out = []
    for dataset in sorted({g.dataset for g in prep.group_list}):
        groups = [g for g in prep.group_list if g.dataset == dataset]
        labels = list(dict.fromkeys(lab for g in groups for lab in g.labels))
        apart = [
            (a, b)
            for i, a in enumerate(labels)
            for b in labels[i + 1 :]
            if not any(a in g.labels and b in g.labels for g in groups)
        ]
        out.append(DatasetGroups(dataset, groups, apart))
    return out


def repeats_text(repeats: tuple[str, ...]) -> str:
    """The runs left out because they repeat a seed (see runs.one_per_seed)."""
    return (
        f"{len(repeats)} run{'s' if len(repeats) != 1 else ''} repeat a seed of another run with "
        "the same method, code and set-up (a rerun); only the newest run of each seed is used, "
        "because an interval over seeds assumes independent runs: left out "
        f"{', '.join(f'`{r}`' for r in repeats)}."
    )


def section(prep: Prepared, found: list[DatasetGroups]) -> Section:
    """The comparability part of report.md: the groups, what sets them apart, the repeats."""
    out = Section("groups", "Comparable groups")
    out.body.append(
        f"Methods are compared only when their runs share the set-up ({SHARED}); runs that "
        "do not are kept in separate groups and never compared."
    )
    split = [ds for ds in found if len(ds.groups) > 1]
    if split:
        rows = [
            [g.name, ", ".join(f"{k}={v}" for k, v in g.differs.items()), ", ".join(g.labels)]
            for ds in split
            for g in ds.groups
        ]
        out.body.append(markdown_table(["group", "set apart by", "methods"], rows))
    out.body.extend(ds.sentence() for ds in found)
    out.findings.extend(found)
    if prep.repeats:
        out.body.append(repeats_text(prep.repeats))
    return out


# ---------------------------------------------------------------- "run this" hints
#: Datasets named with their path on the command line (``csv:FILE``, ``folder:PATH``).
PATH_DATASETS = ("csv", "folder")
#: A parameter without a default: never equal to a recorded value.
_NO_DEFAULT = object()
#: Key entries that are not run options: the dataset (its own flag) and the tuning budget.
_NOT_OPTIONS = frozenset({"dataset", "tuning_budget"})


def hint(prep: Prepared, methods: str, name: str, extra: str = "--seeds 0,1,2") -> str:
    """The ``dml-bench run`` command that gives ``methods`` more runs in the comparable group
    ``name``: the group's dataset and every option of its comparison key that is not the
    default, so that the new runs land in the same group (a hint without them would plan runs
    of another set-up, which the report would never compare with these)."""
    if name not in prep.groups:
        return run_command(methods, name, extra)
    group = prep.group(name)
    options = [*setup_options(group), *tuning_options(prep, group), extra]
    return run_command(methods, dataset_argument(group), " ".join(options).strip())


def first_group(prep: Prepared) -> str:
    """The group a section that no run answers suggests more runs in: the first comparable
    group, so the new runs can be compared with runs already there; the suggested dataset when
    there are no runs."""
    return prep.groups[0] if prep.groups else SUGGESTED_DATASET


def both_families_hint(prep: Prepared, name: str) -> str:
    """:func:`hint` for the paper's method and its usual baseline."""
    return hint(prep, f"{SUGGESTED_PROXY},{SUGGESTED_PAIR}", name)


def dataset_argument(group: Group) -> str:
    """``--dataset``'s value: ``csv:FILE`` / ``folder:PATH`` for a path dataset, else its name."""
    path = group.key.get("dataset.path")
    if group.dataset in PATH_DATASETS and path is not None:
        return shlex.quote(f"{group.dataset}:{path}")
    return shlex.quote(group.dataset)


def setup_options(group: Group) -> list[str]:
    """``--set`` options for the entries of the group's key that differ from the defaults a
    plain command would plan (run options from ``RunConfig``, dataset parameters from the
    dataset's config class)."""
    run_defaults, data_defaults = _run_defaults(), _dataset_defaults(group.dataset)
    options = []
    for name, value in sorted(group.key.items()):
        if name in _NOT_OPTIONS:
            continue
        if name.startswith("dataset."):
            field = name.removeprefix("dataset.")
            skip = field == "path" and group.dataset in PATH_DATASETS
            unknown = data_defaults is not None and field not in data_defaults
            if skip or unknown or _same(value, (data_defaults or {}).get(field, _NO_DEFAULT)):
                continue
        elif name in run_defaults and _same(value, run_defaults[name]):
            continue
        options.append(f"--set {shlex.quote(f'{name}={_option_text(value)}')}")
    return options


def tuning_options(prep: Prepared, group: Group) -> list[str]:
    """What makes a hint's runs tuned as the group's were: nothing for runs at the winners of
    the study their dataset ships (a plain run takes them on that set-up), ``--tuned`` for
    runs at a study of the results folder, and ``--untuned`` for untuned runs on a dataset that
    ships a study (a plain run would take its winners, another tuning budget)."""
    if group.key.get("tuning_budget") is None:
        return ["--untuned"] if _ships_study(group.dataset) else []
    # a shipped study's runs record storage "packaged:FILE" (dml_bench.tune.packaged)
    runs = prep.runs[prep.runs["group"] == group.name]
    storages = runs["tuning_storage"] if "tuning_storage" in runs.columns else []
    if len(storages) and all(str(s).startswith("packaged:") for s in storages):
        return []
    return ["--tuned"]


def _ships_study(dataset: str) -> bool:
    from dml_bench.data import DATASETS

    names = DATASETS.names()
    return dataset in names and getattr(DATASETS.get(dataset), "tuned_defaults", None) is not None


def _run_defaults() -> dict[str, Any]:
    from dml_bench.config import to_dict
    from dml_bench.train.config import RunConfig

    return to_dict(RunConfig())


def _dataset_defaults(dataset: str) -> dict[str, Any] | None:
    """The registered dataset's parameters and their defaults (:data:`_NO_DEFAULT` for one
    without); None for a dataset not registered here, whose parameters are all given. A
    recorded parameter the dataset does not have cannot be set, so a hint leaves it out."""
    from dml_bench.data import DATASETS

    if dataset not in DATASETS.names():
        return None
    fields = dataclasses.fields(DATASETS.get(dataset).config_cls)
    return {f.name: _NO_DEFAULT if f.default is dataclasses.MISSING else f.default for f in fields}


def _same(value: Any, default: Any) -> bool:
    if default is _NO_DEFAULT:
        return False
    if isinstance(default, (list, tuple)) or isinstance(value, (list, tuple)):
        return list(value or []) == list(default or [])
    return bool(value == default)


def _option_text(value: Any) -> str:
    """A recorded value as ``--set`` reads it back (dml_bench.config coerces the text)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_option_text(v) for v in value)
    return str(value)
