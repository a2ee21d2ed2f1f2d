"""Checkpoints: everything needed to continue a run exactly where it stopped, and nothing that runs.

A checkpoint holds the model, the optimiser (proxies included, they are loss parameters in their own
group), the AMP scaler, every RNG state (torch, CUDA, numpy, python), the metrics recorded so far and
the running loss accumulators. The sampler needs no state: batches are a pure function of
(seed, step) (:mod:`dml_bench.train.sampling`). Written atomically: a kill at any instant leaves the
previous or the new checkpoint.

**Loading runs no code.** Results folders travel (shared directories, other nodes, colleagues), and
unpickling arbitrary objects runs whatever code the file names. So a checkpoint holds only what
``torch.load(weights_only=True)`` accepts: tensors, numbers, strings, lists, tuples and dicts. The
numpy and python RNG states become int64 tensors plus numbers; the run's counters and metric rows
are one JSON string. A checkpoint that needs anything else (a crafted file, or one written by
dml-bench before this format, which pickled numpy arrays) is refused with
:class:`CheckpointRefusedError`, before anything in the run folder changes: the run is not trained
again from step 0 over it. A checkpoint that cannot be parsed at all (a disk fault, a file copied
half-way) is set aside as ``checkpoint.pt.unreadable`` and the run starts again from step 0, which
gives the same result as an uninterrupted run, only later.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml_bench.errors import UserError
from dml_bench.store.write import atomic_write_bytes

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
UNREADABLE_SUFFIX = ".unreadable"
#: 2: only tensors, numbers and strings (loads with ``weights_only=True``); 1 pickled numpy states.
FORMAT_VERSION = 2
#: What a checkpoint holds besides its format number.
PARTS = ("model", "loss", "optimizer", "scaler", "state", "rng")
_PICKLE_PROTOCOL_OPCODE = b"\x80"


class CheckpointRefusedError(UserError):
    """A checkpoint that would need more than tensors, numbers and strings to load."""


def rng_states() -> dict[str, Any]:
    """Every RNG state of this process, as tensors and numbers only."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (see :func:`checkpoint_bytes`) with this process's RNG states, atomically."""
    atomic_write_bytes(folder / CHECKPOINT, checkpoint_bytes(state))


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """The file content for ``state``: model, loss, optimizer and scaler state dicts, and
    ``state``, the run's counters and rows as plain JSON values. Raises before anything is
    written if they are not, so a checkpoint that could not be resumed is never written."""
    payload = {
        **state,
        "format": FORMAT_VERSION,
        "state": json.dumps(state["state"], allow_nan=True),
        "rng": rng_states(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The checkpoint of ``folder`` (``state`` decoded back to a dict), or ``None`` when there is
    none or it cannot be parsed (then set aside). Raises :class:`CheckpointRefusedError` for a
    checkpoint that would need more than tensors, numbers and strings, and changes nothing then."""
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    check_checkpoint(path)
    if not zipfile.is_zipfile(path):  # neither torch.save's archive nor a pickle: damaged
        _set_aside(path, "not a zip archive")
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # parsed, but needs what weights_only refuses
        raise _refusal(path, [], str(exc).splitlines()[0]) from None
    except Exception as exc:  # torch.load raises many types for a damaged file
        _set_aside(path, f"{type(exc).__name__}: {exc}")
        return None
    return _decoded(path, payload)


def check_checkpoint(path: Path) -> None:
    """Raise :class:`CheckpointRefusedError` if the file at ``path`` would need any Python object
    beyond tensors, numbers and strings to load. Reads the file's pickle opcodes without running
    them; a file too damaged to read passes here (loading it sets it aside)."""
    if not path.is_file():
        return
    with path.open("rb") as handle:
        head = handle.read(4)
    if not zipfile.is_zipfile(path):
        if head[:1] == _PICKLE_PROTOCOL_OPCODE:
            raise _refusal(path, [], "a bare pickle, not the zip archive torch.save writes")
        return  # not a pickle at all: damaged, set aside when loaded
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a damaged archive: set aside when loaded
        return
    if unsafe:
        raise _refusal(path, unsafe, None)


def _decoded(path: Path, payload: Any) -> dict[str, Any]:
    """The loaded payload with its JSON ``state`` decoded, or a refusal if it is not a checkpoint
    of this format (another program's file, a future version)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise _refusal(
            path, [], f"no dml-bench checkpoint of format {FORMAT_VERSION} (found {found!r})"
        )
    missing = [part for part in PARTS if part not in payload]
    if missing:
        raise _refusal(path, [], f"a checkpoint without {', '.join(missing)}")
    try:
        state = json.loads(payload["state"])
    except (TypeError, ValueError):
        raise _refusal(path, [], "run counters that are not JSON") from None
    return {**payload, "state": state}


def _refusal(path: Path, unsafe: Sequence[str], found: str | None) -> CheckpointRefusedError:
    what = (
        f"it names {', '.join(sorted(unsafe))}, Python objects beyond the tensors, numbers and "
        "strings that dml-bench checkpoints hold, and unpickling them could run code that came "
        "with the file"
        if unsafe
        else f"it holds {found}"
    )
    return CheckpointRefusedError(
        f"The checkpoint {path} was not loaded: {what}. Nothing was changed: the run keeps its "
        "status and records. Checkpoints written by dml-bench before checkpoint format "
        f"{FORMAT_VERSION} pickled numpy arrays and are refused too. If you do not know where the "
        "file comes from, do not load it elsewhere either. To go on, delete it (the run then "
        "trains from step 0, to the same result), or run the command with --rerun to train the "
        "run again in a new folder beside this one."
    )


def _set_aside(path: Path, why: str) -> None:
    aside = path.with_name(CHECKPOINT + UNREADABLE_SUFFIX)
    os.replace(path, aside)
    logger.warning(
        "%s cannot be read (%s); moved it to %s and training this run from step 0.",
        path,
        why,
        aside.name,
    )
