"""Which runs the report compares: the comparable groups, and the repeats of a seed left out.

Methods are compared only within a comparable group: runs that share everything but the method
and its config (:func:`dml_bench.store.records.comparison_key`). :func:`findings` says which
groups exist, what sets them apart, and which methods are therefore never compared;
:func:`section` writes it at the top of report.md, before any comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

from dml_bench.report.runs import Group, Prepared
from dml_bench.report.section import Section
from dml_bench.report.text import markdown_table

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
