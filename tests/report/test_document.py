"""make_report end to end on synthetic runs: files, printed text, errors, run folders untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dml_bench.errors import UserError
from dml_bench.report import make_report


def _fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_make_report_writes_everything_and_leaves_runs_alone(results, benchmark_runs) -> None:
    before = _fingerprint(results)
    out = results / "report"
    result = make_report(results, out, fmt="json")
    after = {k: v for k, v in _fingerprint(results).items() if not k.startswith("report/")}
    assert after == before
    names = {p.name for p in result.files}
    assert {"table.md", "table.csv", "table.json", "table.tex", "report.md"} <= names
    pngs = {n for n in names if n.endswith(".png")}
    assert {
        "rq1_bound_hershey.png",
        "rq2_recall_vs_step_hershey.png",
        "rq2_recall_vs_time_hershey.png",
        "rq3_order_hershey.png",
        "rq5_proxies_hershey.png",
        "qualitative_hershey.png",
    } == pngs
    assert all(p.stat().st_size > 1000 for p in result.files if p.suffix == ".png")
    table_text, skipped_text = result.text.split("\nSkipped 2 runs:")
    assert json.loads(table_text) == json.loads((out / "table.json").read_text())
    assert "hershey-proxy_nca-seed7-abc: status interrupted" in skipped_text
    assert {name for name, _ in result.skipped} == {
        "hershey-proxy_nca-seed7-abc",
        "hershey-triplet_semihard-seed8-abc",
    }
    report = (out / "report.md").read_text()
    for heading in ("RQ1", "RQ2", "RQ3", "RQ4", "RQ5", "Qualitative", "Skipped runs"):
        assert f"## {heading}" in report
    for png in pngs:
        assert f"({png})" in report
    assert report.count("**Answer.**") >= 5
    # a second report over the same folder ignores report/ (not a run) and gives the same table
    again = make_report(results, out, fmt="json")
    assert again.skipped == result.skipped


def test_bad_format_and_fraction_are_user_errors(results, benchmark_runs, tmp_path) -> None:
    with pytest.raises(UserError, match="latex"):
        make_report(results, tmp_path / "o", fmt="html")
    with pytest.raises(UserError, match="target fraction"):
        make_report(results, tmp_path / "o", target_fraction=1.5)


def test_empty_dir_and_only_unfinished_runs_are_user_errors(results, make_run, tmp_path) -> None:
    with pytest.raises(UserError, match="dml-bench run"):
        make_report(results, tmp_path / "o")
    make_run(method="proxy_nca", status="running", columns={"recall@1": [0.1]})
    with pytest.raises(UserError, match="status running"):
        make_report(results, tmp_path / "o")


def test_one_seed_and_equal_seeds_are_said_once_per_section(results, make_run) -> None:  # type: ignore[no-untyped-def]
    """a1469a8 wrote "(1 seed)" in every cell and "250 [250, 250]" for seeds that agreed; now
    cells carry no mark for one seed, and each note stands once in a section that needs it."""
    for method, seeds in (("proxy_nca", (0,)), ("triplet_semihard", (0, 1, 2))):
        for seed in seeds:
            make_run(method=method, seed=seed, columns={"recall@1": [0.1, 0.5, 0.6]})
    report = (make_report(results, results / "report").files[-1]).read_text()
    assert "(1 seed)" not in report and "[200, 200]" not in report
    rq4 = report.split("## RQ4")[1].split("\n## ")[0]
    assert rq4.count("*One seed*") == 1
    rq2 = report.split("## RQ2")[1].split("\n## ")[0]
    assert rq2.count("*Seeds equal*") == 1 and "(seeds equal)" in rq2


def test_the_header_counts_the_runs_used(results, benchmark_runs) -> None:  # type: ignore[no-untyped-def]
    """conftest by hand: proxy_nca and triplet_semihard 3 seeds each, proxy_nca_dynamic at three
    proxy counts 2 seeds each: 12 runs of 5 variants on 1 dataset, seeds 0-2; an interrupted
    and a broken run skipped."""
    report = make_report(results, results / "report").files[-1].read_text()
    assert (
        "from `" + str(results) + "`: 12 completed runs (5 method variants, 1 dataset, "
        "seeds 0, 1, 2); 2 skipped."
    ) in report


def test_a_clipped_bound_is_explained_once_where_it_is_printed(results, make_run) -> None:  # type: ignore[no-untyped-def]
    """Order agreement starting at 2%, 3% and 60%: its t-interval reaches below 0% in RQ3 (cut,
    marked, one note there); the tight Recall@1 of RQ4 needs no note."""
    for seed, start in enumerate((0.02, 0.03, 0.60)):
        make_run(
            method="proxy_nca",
            seed=seed,
            columns={
                "recall@1": [0.1, 0.5, 0.6 + 0.01 * seed],
                "order_agreement": [start, 0.9, 0.95],
            },
        )
    report = make_report(results, results / "report").files[-1].read_text()
    rq3 = report.split("## RQ3")[1].split("\n## ")[0]
    assert "[0.0% (clipped), " in rq3 and rq3.count("*Clipped*") == 1
    rq4 = report.split("## RQ4")[1].split("\n## ")[0]
    assert "(clipped)" not in rq4 and "*Clipped*" not in rq4


def test_no_seeds_equal_note_where_no_equal_interval_is_printed(results, make_run) -> None:  # type: ignore[no-untyped-def]
    """Static proxy_nca never ties: its ties are 0.0% on every seed, an interval of zero width
    that RQ3 shows as a plain mean. The example report still printed the *Seeds equal* note under
    RQ3, where no cell or sentence says the seeds were equal."""
    for seed in range(3):
        make_run(
            method="proxy_nca",
            seed=seed,
            columns={
                "recall@1": [0.1, 0.5, 0.6 + 0.01 * seed],
                "order_agreement": [0.5 + 0.02 * seed, 0.9, 0.95 + 0.01 * seed],
                "order_ties": [0.0, 0.0, 0.0],
            },
        )
    report = make_report(results, results / "report").files[-1].read_text()
    rq3 = report.split("## RQ3")[1].split("\n## ")[0]
    assert "| 0.0% | 0.0% |" in rq3 and "seeds equal" not in rq3
    rq2 = report.split("## RQ2")[1].split("\n## ")[0]
    assert "(seeds equal)" in rq2 and rq2.count("*Seeds equal*") == 1  # steps: all at 100
