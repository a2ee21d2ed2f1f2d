"""Where a run's randomness comes from: explicit generators seeded by the run's seed.

Every draw dml-bench makes is a function of the run's seed and what the draw is for, never of the
order in which objects were built: batches (:mod:`dml_bench.train.sampling`), augmentations
(:class:`dml_bench.train.data.SeededItems`), proxies (:func:`run_generator`), the network's
initial weights (:func:`seeded_global_rng`), k-means and retrieval queries (seeded in
:mod:`dml_bench.train.evaluation`).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed the global RNGs: a fallback for code that draws from them and takes no generator
    (a plugin's loss, a trunk with dropout). dml-bench's own draws use :func:`run_generator` or
    :func:`seeded_global_rng`, so they never depend on what was built or drawn before them."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for one purpose of one run (e.g. ``"proxies"``), seeded by the run's seed
    and the purpose, so two purposes never share a stream."""
    state = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Run code that can only draw from the global torch RNG (``torch.nn`` layers initialise
    themselves that way) from a fresh seed, leaving the global stream as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
