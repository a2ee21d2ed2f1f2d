"""All sections together: the prose and the tables of report.md cannot disagree."""

from __future__ import annotations

from dml_bench.report.questions import all_sections
from dml_bench.report.runs import Prepared
from dml_bench.report.section import Section

from .conftest import _NUMBER

#: Phrases of the answers that name no measured value (confidence level, the paper's claim).
_NOT_MEASURED = (
    "95% bootstrap CI",
    "95% CI",
    "about 3x",
    "Fig. 1, Cars196",
    "the 5% level",
    "the paper's 3x",
)


def _table_numbers(section: Section) -> set[str]:
    cells = set()
    for block in section.body:
        for line in block.splitlines():
            if line.startswith("|"):
                cells.update(_NUMBER.findall(line))
    return cells


def test_every_number_of_an_answer_stands_in_its_section_table(prep: Prepared) -> None:
    """Each number of each generated answer is printed, formatted the same way, in a table of
    the same section."""
    checked = 0
    sections = all_sections(prep, target_fraction=0.9)
    assert [s.key for s in sections] == ["groups", "rq1", "rq2", "rq3", "rq4", "rq5", "qualitative"]
    for section in sections:
        cells = _table_numbers(section)
        for line in (b for b in section.body if b.startswith("**Answer.**")):
            text = line
            for phrase in _NOT_MEASURED:
                text = text.replace(phrase, " ")
            numbers = set(_NUMBER.findall(text))
            assert numbers, line
            assert numbers <= cells, (section.key, numbers - cells, line)
            checked += 1
    assert checked >= 5  # RQ1 (two losses), RQ2, RQ3, RQ4 and RQ5 each answer something
