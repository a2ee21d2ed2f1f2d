"""Which findings the prose of a section states."""

from __future__ import annotations

from dataclasses import dataclass

from dml_bench.report.section import answer_lines, answers


@dataclass(frozen=True)
class _Said:
    label: str

    def sentence(self) -> str:
        return f"{self.label} did it."


def test_answer_lines_prefer_headline_labels_else_all() -> None:
    found = [_Said("a"), _Said("b"), _Said("c")]
    assert answer_lines(found, lambda f: f.label, {"b"}) == ["**Answer.** b did it."]
    assert answer_lines(found, lambda f: f.label, set()) == answers(found)
    assert answers(found)[2] == "**Answer.** c did it."
