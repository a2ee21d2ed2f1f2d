"""One part of report.md, and the answer lines every question prints under its tables.

Each question module (``rq1_bound`` ... ``rq5_assignment``, ``qualitative``) has a pure
``findings(...)`` (runs in, typed findings out) and a ``section(...)`` that renders them into a
:class:`Section`; :mod:`dml_bench.report.document` writes the sections in order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from matplotlib.figure import Figure


class Finding(Protocol):
    """An answer with a one-sentence summary built from its own fields."""

    def sentence(self) -> str: ...


@dataclass
class Section:
    """One part of report.md: a title, markdown paragraphs, figures, and its findings."""

    key: str
    title: str
    body: list[str] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


F = TypeVar("F", bound=Finding)


def answer_lines(
    findings: Sequence[F], label_of: Callable[[F], str], headline: Collection[str]
) -> list[str]:
    """The sentences to print: those about a ``headline`` label when there are any, else all.

    Tables hold every method; the prose answers the paper's question, which is about the paper's
    method (see :attr:`dml_bench.report.runs.Prepared.headline_labels`).
    """
    return answers([f for f in findings if label_of(f) in headline] or list(findings))


def answers(findings: Sequence[Finding]) -> list[str]:
    """One ``**Answer.**`` paragraph per finding, in order."""
    return [f"**Answer.** {f.sentence()}" for f in findings]
