"""Tables, figures and report.md that answer the paper's research questions from run records."""

from dml_bench.report.document import ReportResult, make_report

__all__ = ["ReportResult", "make_report"]
