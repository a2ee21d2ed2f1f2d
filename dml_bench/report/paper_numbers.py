"""The published numbers the report puts beside ours, as data (docs/protocol.md, "Numbers put
side by side in reports").

Each figure says where it comes from (``source``: the table it belongs to), where it was read
(``read_in``), and whether it was checked against the paper's own text (``verified``). Only a
number read in the paper itself (an arXiv/ar5iv page of it, or a verbatim copy of its table) is
verified; a number quoted by a third party is not, and the report prints "(unverified)" beside it.
No figure here is verified: the stored copies of the paper reachable from this project (ar5iv,
arxiv-vanity, deepai, fdocuments) hold its abstract and introduction but not its tables.

The paper's tables (one per dataset: NMI and Recall@K) hold Proxy-NCA and the baselines Triplet
semi-hard, Lifted structure, N-pairs and Struct Clust (the clustering loss). The baselines are
Song et al. 2017's numbers ("Deep metric learning via facility location", CVPR 2017, where Struct
Clust is theirs, "Clustering"). Their CUB-200-2011 and Cars196 rows were read in Kumar et al.'s
"Smart Mining for Deep Metric Learning" (ICCV 2017), Tables 1-2, whose text says the rows of
these four methods are reported from Song et al.'s paper; the Recall@1 values agree with the ones
the project brief attributes to the paper's table. For Stanford Online Products only the
baselines' Recall@1 was found (in the project brief), and no Struct Clust row.

Values are percent, as the papers print them; our metrics are fractions (see
:func:`dml_bench.report.rq4_retrieval.percent`). To add a figure, add a :class:`PaperFigure` to
:data:`PAPER_FIGURES`; RQ4 shows it for its dataset, with blanks for the metrics it lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NO_FUSS = "paper"
REALITY_CHECK = "Reality Check, 512-d"

#: Where the paper's Proxy-NCA rows were read.
READ_DICHOTOMIES = (
    "the dichotomies/proxy-nca reproduction's README, which quotes the paper's Proxy-NCA row "
    "beside its own"
)
#: Where the baselines' CUB-200-2011 and Cars196 rows (NMI, R@1/2/4/8) were read.
READ_SONG_VIA_KUMAR = (
    "Song et al. 2017's rows as reported in Kumar et al., Smart Mining for Deep Metric Learning "
    "(ICCV 2017), Tables 1-2 (read in a translated copy)"
)
#: Where the numbers not found in any readable copy come from.
READ_BRIEF = "quoted in the project brief (see docs/protocol.md); not found in a readable copy here"


@dataclass(frozen=True)
class PaperFigure:
    """One published row: a method on a dataset, ``{metric: percent}``, and where it was read."""

    dataset: str
    method: str
    source: str
    verified: bool
    values: Mapping[str, float]
    read_in: str

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


def _row(nmi: float, r1: float, r2: float, r4: float, r8: float) -> dict[str, float]:
    """A row of the paper's CUB-200-2011 / Cars196 tables, in their column order."""
    return {"nmi": nmi, "recall@1": r1, "recall@2": r2, "recall@4": r4, "recall@8": r8}


def _mlrc(p1: float, rp: float, map_r: float) -> dict[str, float]:
    return {"p@1": p1, "r_precision": rp, "map@r": map_r}


def _proxy_nca(dataset: str, values: dict[str, float]) -> PaperFigure:
    return PaperFigure(dataset, "Proxy-NCA", NO_FUSS, False, values, READ_DICHOTOMIES)


def _song(dataset: str, method: str, values: dict[str, float]) -> PaperFigure:
    """A baseline of the paper's table: Song et al. 2017's row, as Kumar et al. report it."""
    return PaperFigure(dataset, method, NO_FUSS, False, values, READ_SONG_VIA_KUMAR)


def _r1_only(dataset: str, method: str, value: float) -> PaperFigure:
    """A baseline's Recall@1 found only in the project brief (Stanford Online Products)."""
    return PaperFigure(dataset, method, NO_FUSS, False, {"recall@1": value}, READ_BRIEF)


TRIPLET = "Triplet semi-hard"
LIFTED = "Lifted structure"
NPAIRS = "N-pairs"
CLUSTERING = "Struct Clust (clustering)"

PAPER_FIGURES: tuple[PaperFigure, ...] = (
    _proxy_nca("cub200", _row(59.53, 49.21, 61.90, 67.90, 72.40)),
    _song("cub200", TRIPLET, _row(55.38, 42.59, 55.03, 66.44, 77.23)),
    _song("cub200", LIFTED, _row(56.50, 43.57, 56.55, 68.59, 79.63)),
    _song("cub200", NPAIRS, _row(57.24, 45.37, 58.41, 69.51, 79.49)),
    _song("cub200", CLUSTERING, _row(59.23, 48.18, 61.44, 71.83, 81.92)),
    _proxy_nca("cars196", _row(64.90, 73.22, 82.42, 86.36, 88.68)),
    _song("cars196", TRIPLET, _row(53.35, 51.54, 63.78, 73.52, 82.41)),
    _song("cars196", LIFTED, _row(56.88, 52.98, 65.70, 76.01, 84.27)),
    _song("cars196", NPAIRS, _row(57.79, 53.90, 66.76, 77.75, 86.35)),
    _song("cars196", CLUSTERING, _row(59.04, 58.11, 70.64, 80.27, 87.81)),
    _proxy_nca("sop", {"recall@1": 73.73}),
    _r1_only("sop", TRIPLET, 66.67),
    _r1_only("sop", LIFTED, 62.46),
    _r1_only("sop", NPAIRS, 66.41),
    # Musgrave et al., A Metric Learning Reality Check (ECCV 2020), 512-d concatenated.
    PaperFigure("cub200", "ProxyNCA", REALITY_CHECK, False, _mlrc(65.69, 35.14, 24.21), READ_BRIEF),
    PaperFigure(
        "cars196", "ProxyNCA", REALITY_CHECK, False, _mlrc(83.56, 35.62, 25.38), READ_BRIEF
    ),
    PaperFigure("sop", "ProxyNCA", REALITY_CHECK, False, _mlrc(75.89, 50.10, 47.22), READ_BRIEF),
    PaperFigure("cub200", "Triplet", REALITY_CHECK, False, _mlrc(64.24, 34.55, 23.69), READ_BRIEF),
    PaperFigure("cars196", "Triplet", REALITY_CHECK, False, _mlrc(79.13, 33.71, 23.02), READ_BRIEF),
)


def figures_for(dataset: str) -> list[PaperFigure]:
    """The published rows for ``dataset``, in the order above (empty for our own datasets)."""
    return [f for f in PAPER_FIGURES if f.dataset == dataset]
