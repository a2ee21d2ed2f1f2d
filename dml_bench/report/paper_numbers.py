"""The published numbers the report puts beside ours, as data (docs/protocol.md, "Numbers to put side by side").

Each figure says where it comes from and whether it was checked against the paper's own text:
docs/protocol.md marks as "unverified" the numbers quoted by others (the baselines of the paper's table,
which are Song et al. 2017's, and the Reality Check's), and the report prints that mark beside
them. Values are percent, as the papers print them; our metrics are fractions (see
:func:`dml_bench.report.rq4_retrieval.percent`).

To add a figure, add a :class:`PaperFigure` to :data:`PAPER_FIGURES`; RQ4 shows it for its
dataset and the metrics it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NO_FUSS = "paper"
REALITY_CHECK = "Reality Check, 512-d"


@dataclass(frozen=True)
class PaperFigure:
    """One published row: a method on a dataset, ``{metric: percent}``."""

    dataset: str
    method: str
    source: str
    verified: bool
    values: Mapping[str, float]

    @property
    def source_label(self) -> str:
        """The source as the report prints it, marked when unverified."""
        return self.source if self.verified else f"{self.source} (unverified)"


@dataclass(frozen=True)
class PaperClaim:
    """A claim of the paper a sentence quotes (e.g. the speed-up of Fig. 1)."""

    text: str
    where: str


#: RQ2: "Proxy-NCA converges about 3x faster than the triplet-based baselines" (docs/protocol.md, RQ2).
SPEEDUP_CLAIM = PaperClaim(text="about 3x", where="Fig. 1, Cars196")
#: The same claim in a sentence that has no speed-up to compare with it.
SPEEDUP_SHORT = "the paper's 3x"


def _recalls(r1: float, r2: float, r4: float, r8: float, nmi: float) -> dict[str, float]:
    return {"recall@1": r1, "recall@2": r2, "recall@4": r4, "recall@8": r8, "nmi": nmi}


def _mlrc(p1: float, rp: float, map_r: float) -> dict[str, float]:
    return {"p@1": p1, "r_precision": rp, "map@r": map_r}


def _r1(dataset: str, method: str, value: float) -> PaperFigure:
    """A baseline's Recall@1 from the paper's table (Song et al. 2017's numbers; unverified)."""
    return PaperFigure(dataset, method, NO_FUSS, False, {"recall@1": value})


PAPER_FIGURES: tuple[PaperFigure, ...] = (
    # Proxy-NCA, the paper's own table (as quoted by the dichotomies/proxy-nca reproduction).
    PaperFigure("cub200", "Proxy-NCA", NO_FUSS, True, _recalls(49.21, 61.90, 67.90, 72.40, 59.53)),
    PaperFigure("cars196", "Proxy-NCA", NO_FUSS, True, _recalls(73.22, 82.42, 86.36, 88.68, 64.90)),
    PaperFigure("sop", "Proxy-NCA", NO_FUSS, True, {"recall@1": 73.73}),
    _r1("cub200", "Triplet semi-hard", 42.59),
    _r1("cars196", "Triplet semi-hard", 51.54),
    _r1("sop", "Triplet semi-hard", 66.67),
    _r1("cub200", "Lifted structure", 43.57),
    _r1("cars196", "Lifted structure", 52.98),
    _r1("sop", "Lifted structure", 62.46),
    _r1("cub200", "N-pairs", 45.37),
    _r1("cars196", "N-pairs", 53.90),
    _r1("sop", "N-pairs", 66.41),
    # Musgrave et al., A Metric Learning Reality Check (ECCV 2020), 512-d concatenated.
    PaperFigure("cub200", "ProxyNCA", REALITY_CHECK, False, _mlrc(65.69, 35.14, 24.21)),
    PaperFigure("cars196", "ProxyNCA", REALITY_CHECK, False, _mlrc(83.56, 35.62, 25.38)),
    PaperFigure("sop", "ProxyNCA", REALITY_CHECK, False, _mlrc(75.89, 50.10, 47.22)),
    PaperFigure("cub200", "Triplet", REALITY_CHECK, False, _mlrc(64.24, 34.55, 23.69)),
    PaperFigure("cars196", "Triplet", REALITY_CHECK, False, _mlrc(79.13, 33.71, 23.02)),
)


def figures_for(dataset: str) -> list[PaperFigure]:
    """The published rows for ``dataset``, in the order above (empty for our own datasets)."""
    return [f for f in PAPER_FIGURES if f.dataset == dataset]
