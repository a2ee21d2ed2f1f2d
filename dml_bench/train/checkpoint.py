"""Checkpoints: everything needed to continue a run exactly where it stopped.

Model, optimiser (proxies included, they are loss parameters in their own group), AMP scaler,
every RNG state (torch, CUDA, numpy, python), the metrics recorded so far and the running loss
accumulators. The sampler needs no state: batches are a pure function of (seed, step)
(:mod:`dml_bench.train.sampling`). Written atomically: a kill at any instant leaves the previous
or the new checkpoint. A checkpoint that cannot be read anyway (a disk fault, a file copied
half-way) is set aside as ``checkpoint.pt.unreadable`` and the run starts again from step 0, which
gives the same result as an uninterrupted run, only later; it is never a reason to fail the run.
"""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml_bench.store.write import atomic_write_bytes

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
UNREADABLE_SUFFIX = ".unreadable"


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng_states()}, buffer)
    atomic_write_bytes(folder / CHECKPOINT, buffer.getvalue())


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The checkpoint of ``folder``, or ``None`` when there is none or it cannot be read."""
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    try:
        # Our own file, holding numpy and python RNG states: not loadable with weights_only.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises many types for a damaged file
        aside = path.with_name(CHECKPOINT + UNREADABLE_SUFFIX)
        os.replace(path, aside)
        logger.warning(
            "%s cannot be read (%s: %s); moved it to %s and training this run from step 0.",
            path,
            type(exc).__name__,
            exc,
            aside.name,
        )
        return None
    if not isinstance(state, dict):
        os.replace(path, path.with_name(CHECKPOINT + UNREADABLE_SUFFIX))
        logger.warning("%s holds no checkpoint; training this run from step 0.", path)
        return None
    return state
