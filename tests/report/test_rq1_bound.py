"""RQ1: bound findings against values computed by hand from the fixture's curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dml_bench.report import make_report, rq1_bound
from dml_bench.report.runs import Prepared, prepare
from dml_bench.store.read import load_runs

from .conftest import assert_numbers_come_from_fields, table_lines


def test_findings_values_and_sentence(prep: Prepared) -> None:
    found = rq1_bound.findings(prep)
    assert [(f.label, f.loss) for f in found] == [("proxy_nca", "NCA"), ("proxy_nca", "triplet")]
    nca, trip = found
    # conftest: plain gap_i = 1.0 - 0.1 i, paper's gap (rhs - data) 2.0 - 0.1 i over steps
    # 0..800; quarters are steps <= 200 and >= 600
    assert nca.held_plain.mean == 1.0 and nca.held_plain.n == 3
    assert nca.gap_first == pytest.approx(np.mean([2.0, 1.9, 1.8]))
    assert nca.gap_last == pytest.approx(np.mean([1.4, 1.3, 1.2]))
    assert nca.eps_max_first == pytest.approx(np.mean([1.4, 1.35, 1.3]))
    assert nca.eps_mean_last == pytest.approx(np.mean([0.7, 0.65, 0.6]))
    assert nca.held_paper is not None and nca.held_paper.mean == 1.0
    assert nca.held_paper_no_eps is not None
    assert nca.held_paper_no_eps.mean == pytest.approx(0.8)  # 0.9, 0.8, 0.7 over seeds
    assert nca.held_plain_triples is not None and nca.held_plain_triples.mean == 0.5
    assert nca.held_paper_rows is not None
    assert nca.held_paper_rows.mean == pytest.approx((1 + 1 + 8 / 9) / 3)
    assert nca.terms_last["data"] == pytest.approx(np.mean([1.4, 1.3, 1.2]))
    assert nca.terms_last["alpha x proxy"] == pytest.approx(np.mean([1.8, 1.6, 1.4]) / 9)
    assert nca.terms_last["(1 - alpha) log n"] == pytest.approx(2.0)
    assert nca.terms_last["c eps"] == pytest.approx(4 * np.mean([1.1, 1.05, 1.0]))
    # the triplet form was not logged with the paper's columns: plain check only
    assert trip.held_paper is None and trip.held_plain.mean == pytest.approx(8 / 9)
    assert trip.gap_last == pytest.approx(np.mean([0.1, 0.1, -0.1]))
    for finding in found:
        assert_numbers_come_from_fields(finding)
    assert "the paper's bound on the NCA loss" in nca.sentence()
    assert "held for 100.0% of the in-batch triples" in nca.sentence()
    assert "narrowed" in nca.sentence()
    assert "did not log the paper's bound" in trip.sentence()


def test_section_renders_one_row_per_finding(prep: Prepared) -> None:
    found = rq1_bound.findings(prep)
    section = rq1_bound.section(prep, found)
    assert "rq1_bound_hershey" in section.figures
    table = next(b for b in section.body if b.startswith("| method"))
    rows = table_lines(table)
    assert len(rows) == 2
    assert rows[0].startswith("| proxy_nca | hershey | NCA | 3 | 100.0% (seeds equal) | ")
    assert rows[1].startswith("| proxy_nca | hershey | triplet | 3 | n/a | n/a | n/a | n/a | ")
    assert section.findings == found


def test_without_diagnostics_says_which_command(make_run, results) -> None:
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    assert rq1_bound.findings(prep) == []
    body = "\n".join(rq1_bound.section(prep, []).body)
    assert "Cannot be answered" in body and "dml-bench run --methods proxy_nca" in body


@pytest.mark.parametrize(
    ("first", "last", "trend"),
    [
        (2.9, -1.1, "changed sign"),
        (-0.5, 0.2, "changed sign"),
        (2.9, 0.3, "narrowed"),
        (-0.5, -0.1, "narrowed"),
        (0.3, 0.9, "did not narrow"),
        (float("nan"), 0.1, "cannot tell"),
    ],
)
def test_gap_trend_tells_a_sign_change_from_narrowing(
    first: float, last: float, trend: str
) -> None:
    assert rq1_bound.gap_trend(first, last) == trend


def test_words_follow_the_share_and_the_count(make_run, results) -> None:  # type: ignore[no-untyped-def]
    """Two logged rows, the proxy loss above the data loss on one: a1469a8 wrote "held on most
    logged rows" for this 50.0%; the sentence now says the count."""
    make_run(
        method="proxy_nca",
        columns={
            "recall@1": [0.2, 0.4],
            "proxy_nca_loss": [1.0, 0.5],
            "data_nca_loss": [0.8, 0.9],
        },
    )
    prep = prepare(load_runs(results))
    (nca,) = rq1_bound.findings(prep)
    assert (nca.rows, nca.rows_held_plain) == (2, 1)
    sentence = nca.sentence()
    assert "held on 1 of 2 logged rows (50.0%; one seed" in sentence
    assert "most" not in sentence
    assert_numbers_come_from_fields(nca)
    report = make_report(results, results / "report").files[-1].read_text()
    assert "on 1 of 2 logged rows" in report and "most logged rows" not in report


def test_paper_bound_on_the_batch_mean_is_counted_over_seeds(prep: Prepared) -> None:
    """conftest: 9 rows per seed, the paper's bound held on the mean on all but seed 2's last."""
    nca = rq1_bound.findings(prep)[0]
    assert (nca.rows_paper, nca.rows_held_paper) == (27, 26)
    assert "on the batch mean on most logged rows (26 of 27)" in nca.sentence()


def test_negative_losses_are_explained_beside_the_figure(make_run, results) -> None:  # type: ignore[no-untyped-def]
    """The paper's negatives-only denominator lets the NCA loss go below zero; a1469a8 plotted
    such losses without a word. The note cites docs/protocol.md, which explains it too."""
    make_run(
        method="proxy_nca",
        columns={
            "recall@1": [0.2, 0.4, 0.5],
            "proxy_nca_loss": [0.5, -0.3, -0.6],
            "data_nca_loss": [0.8, 0.1, -0.2],
        },
    )
    prep = prepare(load_runs(results))
    section = rq1_bound.section(prep, rq1_bound.findings(prep))
    note = section.body[-1]
    assert note.startswith("*Negative losses*") and "negatives only" in note
    assert "below zero on 2 of 3 logged rows" in note
    report = make_report(results, results / "report").files[-1].read_text()
    assert report.index("*Negative losses*") < report.index("![rq1_bound_hershey]")
    protocol = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    assert '"Negative losses"' in note and "**Negative losses.**" in protocol
    assert "negatives-only denominator" in protocol


def test_no_negative_loss_note_without_a_loss_figure(make_run, results) -> None:  # type: ignore[no-untyped-def]
    make_run(method="triplet_semihard", seed=0, columns={"recall@1": [0.1, 0.4]})
    prep = prepare(load_runs(results))
    assert not any("Negative losses" in b for b in rq1_bound.section(prep, []).body)


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    mean = float(np.mean(values))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


def test_table_row_cells_against_hand_and_scipy_values(prep: Prepared) -> None:
    """Every cell of the NCA row, from the fixture's columns by hand (numpy, scipy's
    t-interval), not from the finding: conftest's 9 rows per seed, quarters = steps <= 200 and
    >= 600, alpha = 1/9, c = 4."""
    nca = rq1_bound.findings(prep)[0]
    on_mean = [1.0, 1.0, 8 / 9]  # the paper's bound on the batch mean: seed 2 misses its last row
    m, lo, _ = _t_interval(on_mean)
    no_eps, lo_ne, _ = _t_interval([0.9, 0.8, 0.7])
    data_q4 = np.mean([1.4, 1.3, 1.2])
    proxy_q4 = np.mean([1.8, 1.6, 1.4])
    expected = [
        "proxy_nca",
        "hershey",
        "NCA",
        "3",
        "100.0% (seeds equal)",
        f"{100 * m:.1f}% [{100 * lo:.1f}%, 100.0% (clipped)] (26 of 27)",
        f"{100 * no_eps:.1f}% [{100 * lo_ne:.1f}%, 100.0% (clipped)]",
        "50.0% (seeds equal)",
        "100.0% (seeds equal) (27 of 27)",
        f"{data_q4:.3f}",
        f"{proxy_q4 / 9:.3f}",
        "2.000",
        f"{4 * np.mean([1.1, 1.05, 1.0]):.3f}",
        f"{np.mean([2.0, 1.9, 1.8]):.3f}",
        f"{np.mean([1.4, 1.3, 1.2]):.3f}",
        f"{np.mean([1.4, 1.35, 1.3]):.3f}",
        f"{np.mean([1.1, 1.05, 1.0]):.3f}",
    ]
    assert rq1_bound.table_row(nca) == expected
    assert nca.eps_max_last == pytest.approx(1.05)
    assert nca.held_paper_no_eps is not None and nca.held_paper_no_eps.clipped_high
