"""``make_report``: read the runs, write tables, figures and report.md, return what the CLI prints.

The report only reads run folders; everything it writes goes to ``out_dir`` (by default
``<results>/report/``, which the reader ignores).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from dml_bench.errors import UserError
from dml_bench.report import plots, tables, tuning
from dml_bench.report.questions import all_sections
from dml_bench.report.runs import prepare
from dml_bench.report.section import Section
from dml_bench.report.stats import Interval, Ratio
from dml_bench.report.text import (
    AGREED_CELL,
    AGREED_NOTE,
    AGREED_WORDS,
    CLIPPED_MARK,
    CLIPPED_NOTE,
    ONE_SEED_NOTE,
    file_name,
)
from dml_bench.store.clean import NEVER_TRAINED
from dml_bench.store.read import RunTable, load_runs

logger = logging.getLogger(__name__)

#: How many skipped runs the printed summary lists (report.md lists them all).
SKIPPED_SHOWN = 10


class NoCompletedRunsError(UserError):
    """Run folders exist but none of them finished."""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`make_report` produced: the printed text, the files written, the skipped runs."""

    text: str
    files: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    sections: list[Section] = field(default_factory=list)


def make_report(
    results_dir: Path,
    out_dir: Path,
    fmt: str = "markdown",
    target_fraction: float = 0.9,
) -> ReportResult:
    """Write the report of every completed run under ``results_dir`` into ``out_dir``.

    Writes the main table in all formats (table.md, table.csv, table.json, table.tex), report.md
    (the answers to docs/protocol.md's research questions) and PNG figures. Returns the table in ``fmt``
    followed by a short list of skipped runs, as the CLI prints it.
    """
    tables.check_format(fmt)
    if not 0.0 < target_fraction <= 1.0:
        raise UserError(
            f"The target fraction must be in (0, 1], got {target_fraction}; e.g. 0.9 measures "
            "the time to reach 90% of each method's best Recall@1."
        )
    run_table = load_runs(Path(results_dir))
    if run_table.runs.empty:
        raise NoCompletedRunsError(
            f"No completed run in {results_dir}: {_skipped_text(run_table.skipped, None)} "
            "Finish or resume them with `dml-bench run` (the same command resumes an unfinished "
            "run)."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prep = prepare(run_table)
    main = tables.main_table(prep.runs)
    files = [
        _write(out_dir / f"table.{tables.FORMAT_SUFFIX[f]}", tables.render(main, f))
        for f in tables.FORMATS
    ]
    sections = all_sections(prep, target_fraction)
    note = tuning.budget_note(prep.runs)
    for section in sections:
        if section.key in ("rq2", "rq4"):  # the comparisons a tuning budget can change
            section.body.append(note)
    tuned = tuning.findings(results_dir, prep.runs)
    if tuned:
        sections.append(tuning.section(tuned))
    for section in sections:
        for name, fig in section.figures.items():
            files.append(plots.save_figure(fig, out_dir / f"{file_name(name)}.png"))
    document = render_document(run_table, main, sections, target_fraction)
    files.append(_write(out_dir / "report.md", document))
    logger.info("Wrote %d report files to %s", len(files), out_dir)
    text = tables.render(main, fmt)
    if run_table.skipped:
        text += "\n" + _skipped_text(run_table.skipped, SKIPPED_SHOWN) + "\n"
    return ReportResult(
        text=text, files=files, skipped=list(run_table.skipped), table=main, sections=sections
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _skipped_text(all_skipped: list[tuple[str, str]], limit: int | None) -> str:
    """The skipped runs, each with its reason; folders of runs that never trained a step are
    counted in one line instead (they hold no result)."""
    skipped = [(name, reason) for name, reason in all_skipped if reason != NEVER_TRAINED]
    untrained = len(all_skipped) - len(skipped)
    lines = []
    if skipped:
        shown = skipped if limit is None else skipped[:limit]
        lines = [f"Skipped {len(skipped)} run{'s' if len(skipped) != 1 else ''}:"]
        lines += [f"  - {name}: {reason}" for name, reason in shown]
        if limit is not None and len(skipped) > limit:
            lines.append(f"  ... and {len(skipped) - limit} more (all listed in report.md)")
    if untrained:
        lines.append(
            f"{_count(untrained, 'folder')} of runs that never trained a step ignored "
            "(`dml-bench clean` lists them and removes them with --yes)."
        )
    return "\n".join(lines)


def _intervals(obj: object) -> list[Interval | Ratio]:
    if isinstance(obj, (Interval, Ratio)):
        return [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [i for f in dataclasses.fields(obj) for i in _intervals(getattr(obj, f.name))]
    if isinstance(obj, (list, tuple)):
        return [i for x in obj for i in _intervals(x)]
    if isinstance(obj, dict):
        return [i for x in obj.values() for i in _intervals(x)]
    return []


def section_notes(section: Section) -> list[str]:
    """What the section's cells leave unsaid, once: one seed, seeds that agreed exactly, or
    an interval bound cut at the range of its value. The last two are said only where the
    section prints such an interval (a finding may hold one it does not print: RQ3's ties are
    shown as means, RQ2's seconds under loads that differ as a range)."""
    found = [i for f in section.findings for i in _intervals(f)]
    seeds = [n for i in found for n in _seed_counts(i)]
    notes = []
    if 1 in seeds:
        notes.append(ONE_SEED_NOTE)
    body = "\n".join(section.body)
    if AGREED_CELL in body or AGREED_WORDS in body:  # an equal interval the section prints
        notes.append(AGREED_NOTE)
    if CLIPPED_MARK in body:
        notes.append(CLIPPED_NOTE)
    return notes


def _seed_counts(found: Interval | Ratio) -> list[int]:
    if isinstance(found, Interval):
        return [found.n]
    return [found.n_numerator, found.n_denominator]


def render_document(
    run_table: RunTable, main: pd.DataFrame, sections: list[Section], target_fraction: float
) -> str:
    """report.md: runs used, the main table, one section per research question, skipped runs."""
    runs = run_table.runs
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# dml-bench report",
        f"Generated {stamp} from `{run_table.results_dir}`: {len(runs)} completed runs "
        f"({_count(runs['variant'].nunique(), 'method variant')}, "
        f"{_count(runs['dataset'].nunique(), 'dataset')}, "
        f"seeds {', '.join(map(str, sorted(runs['seed'].unique())))}); "
        f"{len(run_table.skipped)} skipped. Questions from docs/protocol.md (Movshovitz-Attias et al., "
        "ICCV 2017). Intervals are 95%; see each section for how they are computed.",
        "## Main table",
        "Final metrics (last evaluation), mean ± sample std over seeds.",
        tables.render(main, "markdown"),
    ]
    for section in sections:
        parts.append(f"## {section.title}")
        parts.extend(section.body)
        parts.extend(section_notes(section))
        parts.extend(f"![{name}]({file_name(name)}.png)" for name in section.figures)
    if run_table.skipped:
        parts.append("## Skipped runs")
        parts.append(_skipped_text(run_table.skipped, None))
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"
