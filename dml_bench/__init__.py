"""dml-bench: a benchmark harness for deep metric learning.

It answers the research questions of "No Fuss Distance Metric Learning using Proxies"
(Movshovitz-Attias et al., ICCV 2017) with one training loop, one evaluator and recorded runs.
Importing the package is cheap; ``dml_bench.evaluate`` loads torch on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from dml_bench.eval import evaluate

        return evaluate
    raise AttributeError(f"module 'dml_bench' has no attribute {name!r}")
