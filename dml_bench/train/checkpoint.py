"""Checkpoints: everything needed to continue a run exactly where it stopped.

Model, optimiser (proxies included, they are loss parameters in their own group), AMP scaler,
every RNG state (torch, CUDA, numpy, python), the metrics recorded so far and the running loss
accumulators. The sampler needs no state: batches are a pure function of (seed, step)
(:mod:`dml_bench.train.sampling`). Written atomically: a kill at any instant leaves the previous
or the new checkpoint.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml_bench.store.write import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"


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
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
