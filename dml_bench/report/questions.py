"""The sections of report.md that answer the paper's research questions (docs/protocol.md, RQ1-RQ5).

One module per question, each with a pure ``findings(...)`` (the runs in, typed findings out,
tested with numbers) and a ``section(...)`` that renders them to Markdown and figures:

- :mod:`.rq1_bound`: does the proxy loss bound the data loss?
- :mod:`.rq2_convergence`: how fast does each method converge?
- :mod:`.rq3_order`: do proxies keep the order of distances?
- :mod:`.rq4_retrieval`: zero-shot retrieval and clustering, beside the paper's numbers.
- :mod:`.rq5_assignment`: static vs dynamic assignment and the number of proxies.
- :mod:`.qualitative`: the retrieval figure.

Each finding's one-sentence summary is built only from its own fields (formatted by
:mod:`.text`), so a test can check every number of a sentence against the values it came from;
a section that the runs cannot answer says which ``dml-bench run ...`` command would.
"""

from __future__ import annotations

from dml_bench.report import (
    comparability,
    qualitative,
    rq1_bound,
    rq2_convergence,
    rq3_order,
    rq4_retrieval,
    rq5_assignment,
)
from dml_bench.report.runs import Prepared
from dml_bench.report.section import Section


def all_sections(prep: Prepared, target_fraction: float) -> list[Section]:
    """Every section of report.md, in order."""
    return [
        comparability.section(prep, comparability.findings(prep)),
        rq1_bound.section(prep, rq1_bound.findings(prep)),
        rq2_convergence.section(
            prep, rq2_convergence.findings(prep, target_fraction), target_fraction
        ),
        rq3_order.section(prep, rq3_order.findings(prep)),
        rq4_retrieval.section(prep, rq4_retrieval.findings(prep)),
        rq5_assignment.section(prep, rq5_assignment.findings(prep)),
        qualitative.section(qualitative.findings(prep)),
    ]
