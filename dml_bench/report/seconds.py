"""Wall-clock seconds and the machine load they ran under (RQ2).

Runs record, at every evaluation, the machine's 1-minute load average per core (``load1``,
:func:`dml_bench.store.env.machine_load`), others' work included. The seconds a run needs depend
on it: in the example report one seed of proxy_nca reached its target after 56.6 s at a load of
1.41 per core, the other two after about 5 s at 0.7-1.0 (CPU seconds grew 4x too, so they do not
rescue such runs). So the report compares seconds only between runs under comparable loads:

- between two methods, when the means of their runs' loads differ by at most :data:`LOAD_GAP`;
- within one method, when its seeds' loads do (:func:`loads_differ`); otherwise a mean or a
  t-interval over its seeds would mostly measure which seed ran on a busy machine, and the
  report gives the range over its seeds, marked :data:`LOADS_DIFFER`, and each seed's seconds
  and load (:func:`loads_note`) instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from dml_bench.report.text import fmt_seconds, fmt_value

#: Mean machine load per core of two runs that differ by more than this: one had at most about
#: half the machine the other had, so their seconds are not compared (or averaged).
LOAD_GAP = 0.5
#: The mark of a seconds cell whose seeds ran under loads more than :data:`LOAD_GAP` apart.
LOADS_DIFFER = "(loads differ)"


class Timed(Protocol):
    """What these functions read of one method's time to target (RQ2's ConvergenceFinding)."""

    @property
    def label(self) -> str: ...

    @property
    def dataset(self) -> str: ...

    @property
    def load(self) -> float: ...

    @property
    def seconds_per_seed(self) -> dict[int, float]: ...

    @property
    def loads_per_seed(self) -> dict[int, float]: ...


def value_range(values: Mapping[int, float]) -> tuple[float, float]:
    """The lowest and the highest finite value over seeds, (NaN, NaN) when there is none."""
    finite = [v for v in values.values() if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else (math.nan, math.nan)


def loads_differ(t: Timed) -> bool:
    """Whether its seeds ran under loads per core more than :data:`LOAD_GAP` apart."""
    low, high = value_range(t.loads_per_seed)
    return high - low > LOAD_GAP


def range_text(t: Timed) -> str:
    """Its seconds in prose when its seeds' loads differ: the range, and why no mean."""
    (fast, slow), (low, high) = value_range(t.seconds_per_seed), value_range(t.loads_per_seed)
    return (
        f"from {fmt_seconds(fast)} to {fmt_seconds(slow)} over its seeds, which ran under "
        f"machine loads per core from {fmt_value(low)} to {fmt_value(high)}, so no mean or "
        "interval of seconds is given"
    )


def range_cell(t: Timed) -> str:
    fast, slow = value_range(t.seconds_per_seed)
    return f"{fmt_seconds(fast)} to {fmt_seconds(slow)} {LOADS_DIFFER}"


def seeds_text(t: Timed) -> str:
    """Each seed's seconds to target and load, for the note under the table."""
    seeds = ", ".join(
        f"seed {seed} {fmt_seconds(t.seconds_per_seed[seed])} at "
        f"{fmt_value(t.loads_per_seed.get(seed, math.nan))}"
        for seed in sorted(t.seconds_per_seed)
    )
    return f"{t.label} on {t.dataset}: {seeds}"


def refusal(proxy: Timed, pair: Timed) -> str:
    """Why two methods' seconds are not compared ("" when they are): runs under machine loads
    that differ, within one method's seeds or between the two methods."""
    for t in (proxy, pair):
        if loads_differ(t):
            low, high = value_range(t.loads_per_seed)
            return (
                f"the seeds of {t.label} ran under machine loads per core from "
                f"{fmt_value(low)} to {fmt_value(high)}"
            )
    if not (math.isfinite(proxy.load) and math.isfinite(pair.load)):
        return ""
    if abs(proxy.load - pair.load) <= LOAD_GAP:
        return ""
    return (
        f"the machine's load per core averaged {fmt_value(proxy.load)} during the "
        f"{proxy.label} runs and {fmt_value(pair.load)} during the {pair.label} runs"
    )


def loads_note(methods: Sequence[Timed]) -> str:
    """Under RQ2's table: each seed's seconds and load, for the methods whose seeds' loads
    differ ("" when none)."""
    mixed = [m for m in methods if loads_differ(m)]
    if not mixed:
        return ""
    return (
        f"*Loads differ*: the seeds of these methods ran under machine loads per core more than "
        f"{fmt_value(LOAD_GAP)} apart, so their seconds measure the machine as much as the "
        "method; a mean or a t-interval over them would mostly measure which seed ran on a busy "
        "machine. Seconds to target and mean load per core of each seed: "
        + "; ".join(seeds_text(m) for m in mixed)
        + "."
    )
