"""Seconds under machine load: ranges, the load gap within and between methods, the note."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dml_bench.report import seconds


@dataclass(frozen=True)
class _Timed:
    label: str
    seconds_per_seed: dict[int, float]
    loads_per_seed: dict[int, float] = field(default_factory=dict)
    dataset: str = "hershey"

    @property
    def load(self) -> float:
        finite = [v for v in self.loads_per_seed.values() if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan


def test_value_range_skips_missing_values() -> None:
    assert seconds.value_range({0: 3.0, 1: math.nan, 2: 1.5}) == (1.5, 3.0)
    low, high = seconds.value_range({0: math.nan})
    assert math.isnan(low) and math.isnan(high)


def test_loads_differ_only_past_the_gap() -> None:
    at_gap = _Timed("a", {0: 1.0, 1: 2.0}, {0: 0.25, 1: 0.75})
    past = _Timed("b", {0: 1.0, 1: 2.0}, {0: 0.25, 1: 0.76})
    unrecorded = _Timed("c", {0: 1.0, 1: 2.0}, {0: math.nan, 1: math.nan})
    assert not seconds.loads_differ(at_gap) and seconds.loads_differ(past)
    assert not seconds.loads_differ(unrecorded)  # runs written before load1: no claim
    assert seconds.range_cell(past) == "1.0 s to 2.0 s (loads differ)"


def test_refusal_names_the_method_whose_seeds_differ_before_comparing_methods() -> None:
    """Two methods with the same mean load (1.0) can still hide a seed on a busy machine: the
    example report compared proxy_nca_dynamic (seeds at 2.32, 0.86, 0.95) with triplet_semihard
    (2.89, 0.92, 0.96) in seconds and printed "0.54x [0.03x, 9.09x]"."""
    mixed = _Timed("dyn", {0: 179.2, 1: 7.6, 2: 7.1}, {0: 2.32, 1: 0.86, 2: 0.95})
    calm = _Timed("nca", {0: 3.3, 1: 3.6}, {0: 0.97, 1: 0.98})
    busy = _Timed("trip", {0: 9.0, 1: 9.5}, {0: 1.6, 1: 1.7})
    assert seconds.refusal(mixed, calm) == (
        "the seeds of dyn ran under machine loads per core from 0.860 to 2.320"
    )
    assert "averaged 0.975 during the nca runs and 1.650 during the trip runs" in (
        seconds.refusal(calm, busy)
    )
    assert seconds.refusal(calm, calm) == ""
    note = seconds.loads_note([calm, mixed])
    assert note.startswith("*Loads differ*") and "nca" not in note
    assert note.endswith(
        "dyn on hershey: seed 0 179.2 s at 2.320, seed 1 7.6 s at 0.860, seed 2 7.1 s at 0.950."
    )
    assert seconds.loads_note([calm]) == ""
