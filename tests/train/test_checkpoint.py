"""Checkpoints hold only tensors, numbers and strings, and a file that needs more is refused.

The crafted checkpoints below run code when unpickled (their ``__reduce__`` asks pickle to call
``exec``); the first test shows that they really do, with ``weights_only=False``, so that the
refusals after it mean something.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import random
import signal
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dml_bench.train import checkpoint, loop
from dml_bench.train.checkpoint import (
    CHECKPOINT,
    FORMAT_VERSION,
    CheckpointRefusedError,
    check_checkpoint,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from tests.cli.helpers import (
    assert_same_results,
    describe,
    file_hashes,
    invoke,
    only_run,
    read_status,
    run_args,
    shared_data_root,
)


class PlantsAMarker:
    """Unpickling this writes ``marker``: what a crafted checkpoint would do with a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def crafted_checkpoint(path: Path, marker: Path) -> None:
    """A torch.save archive shaped like a dml-bench checkpoint, with one booby-trapped entry."""
    model = torch.nn.Linear(2, 2)
    torch.save(
        {"format": FORMAT_VERSION, "model": model.state_dict(), "state": PlantsAMarker(marker)},
        path,
    )


def bare_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"model": PlantsAMarker(marker)}))


def format_1_checkpoint(path: Path) -> None:
    """What dml-bench wrote before format 2: numpy and python RNG states pickled as they are."""
    state = {"model": {}, "rng": {"numpy": np.random.get_state(), "python": random.getstate()}}
    torch.save(state, path)


def genuine_state() -> dict[str, Any]:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "loss": {},
        "optimizer": optimizer.state_dict(),
        "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "state": {
            "step": 6,
            "elapsed_s": 1.25,
            "rows": [{"step": 0, "recall@1": 0.1 + 0.2, "nmi": float("nan"), "train_loss": None}],
            "loss_sum": 3.3,
            "loss_count": 4,
        },
    }


def test_the_crafted_files_do_run_code_when_unpickled_unsafely(tmp_path: Path) -> None:
    for name, craft in (("archive", crafted_checkpoint), ("bare", bare_pickle)):
        marker = tmp_path / f"{name}.marker"
        craft(tmp_path / f"{name}.pt", marker)
        with open(tmp_path / f"{name}.pt", "rb") as f:
            pickle.load(f) if name == "bare" else torch.load(f, weights_only=False)
        assert marker.read_text() == "code ran"


@pytest.mark.parametrize("craft", [crafted_checkpoint, bare_pickle], ids=["archive", "bare"])
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path: Path, craft: Any) -> None:
    marker = tmp_path / "marker"
    craft(tmp_path / CHECKPOINT, marker)
    before = file_hashes(tmp_path)
    with pytest.raises(CheckpointRefusedError) as refused:
        load_checkpoint(tmp_path)
    assert not marker.exists()
    assert file_hashes(tmp_path) == before  # neither moved aside nor replaced
    message = str(refused.value)
    assert "was not loaded" in message and "delete it" in message and "--rerun" in message
    if craft is crafted_checkpoint:
        assert "builtins.exec" in message  # names what it found


def test_a_checkpoint_of_the_format_before_is_refused_naming_numpy(tmp_path: Path) -> None:
    format_1_checkpoint(tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointRefusedError, match="numpy"):
        check_checkpoint(tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointRefusedError, match="numpy"):
        load_checkpoint(tmp_path)
    assert (tmp_path / CHECKPOINT).exists()


def test_a_safe_file_that_is_no_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointRefusedError, match=f"format {FORMAT_VERSION}"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated"], ids=["not_a_checkpoint", "copied_half_way"]
)
def test_a_damaged_checkpoint_is_set_aside(tmp_path: Path, damage: str) -> None:
    save_checkpoint(tmp_path, genuine_state())
    data = (tmp_path / CHECKPOINT).read_bytes()
    broken = b"not a checkpoint" if damage == "garbage" else data[: len(data) // 2]
    (tmp_path / CHECKPOINT).write_bytes(broken)
    assert load_checkpoint(tmp_path) is None
    assert not (tmp_path / CHECKPOINT).exists()
    assert (tmp_path / (CHECKPOINT + ".unreadable")).read_bytes() == broken


def test_a_genuine_checkpoint_loads_with_weights_only_and_round_trips(tmp_path: Path) -> None:
    state = genuine_state()
    save_checkpoint(tmp_path, state)
    path = tmp_path / CHECKPOINT
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    assert zipfile.is_zipfile(path)
    torch.load(path, weights_only=True)  # torch's own check, independently of ours
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None
    rows = loaded["state"].pop("rows")
    expected_rows = state["state"].pop("rows")
    assert loaded["state"] == state["state"]
    assert (
        rows[0]["recall@1"] == expected_rows[0]["recall@1"]
    )  # float bits kept (0.30000000000000004)
    assert np.isnan(rows[0]["nmi"]) and rows[0]["train_loss"] is None
    for name, tensor in state["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    optimizer = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    optimizer.load_state_dict(loaded["optimizer"])
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_counters_that_are_not_json_are_never_written(tmp_path: Path) -> None:
    state = genuine_state()
    state["state"]["loss_sum"] = object()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, state)
    assert not (tmp_path / CHECKPOINT).exists()


def _draws() -> tuple[list[float], list[float], list[float]]:
    return (
        torch.rand(5).tolist(),
        [float(np.random.standard_normal()), *np.random.rand(4).tolist()],
        [random.gauss(0, 1), *(random.random() for _ in range(4))],
    )


def test_rng_states_come_back_exactly(tmp_path: Path) -> None:
    """Cached Gaussians included: numpy's ``has_gauss`` and python's ``gauss_next``."""
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    random.gauss(0, 1)  # and in python's
    save_checkpoint(tmp_path, genuine_state())
    expected = _draws()
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_states(loaded["rng"])
    assert _draws() == expected


# --- through the command line ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


def _interrupted_run(results: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run interrupted (Ctrl-C) at step 4, with its checkpoint: a run the next command resumes."""
    calls = {"n": 0}
    train_step = loop.train_step

    def interrupting_step(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(loop, "train_step", interrupting_step)
        result = invoke(run_args(results), data_root)
    assert result.exit_code == 130, describe(result)
    run = only_run(results)
    assert read_status(run)["status"] == "interrupted"
    return run


@pytest.mark.parametrize("craft", [crafted_checkpoint, bare_pickle], ids=["archive", "bare"])
def test_run_refuses_a_planted_checkpoint_with_exit_2_and_keeps_the_records(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, craft: Any
) -> None:
    results, marker = tmp_path / "results", tmp_path / "marker"
    run = _interrupted_run(results, data_root, monkeypatch)
    craft(run / CHECKPOINT, marker)
    before = file_hashes(results)
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 2, describe(result)
    assert "Traceback" not in result.output
    paragraph = result.output.split("Error: ", 1)[1]
    assert "was not loaded" in paragraph and "delete it" in paragraph
    assert not marker.exists()
    assert file_hashes(results) == before  # status, records and the file itself untouched


def test_the_checkpoint_is_checked_again_after_the_folder_is_claimed(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file planted between the check of all runs and the claim of this one is still refused."""
    results, marker = tmp_path / "results", tmp_path / "marker"
    run = _interrupted_run(results, data_root, monkeypatch)
    check = checkpoint.check_checkpoint
    calls = {"n": 0}

    def plant_after_the_first_check(path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            crafted_checkpoint(run / CHECKPOINT, marker)
        check(path)

    from dml_bench.train import experiment

    monkeypatch.setattr(experiment, "check_checkpoint", plant_after_the_first_check)
    status = read_status(run)
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 2, describe(result)
    assert calls["n"] == 2 and not marker.exists()
    assert read_status(run) == status


def test_deleting_the_refused_checkpoint_trains_the_run_to_the_uninterrupted_result(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    assert invoke(run_args(reference), data_root).exit_code == 0
    results = tmp_path / "results"
    run = _interrupted_run(results, data_root, monkeypatch)
    format_1_checkpoint(run / CHECKPOINT)
    assert invoke(run_args(results), data_root).exit_code == 2
    (run / CHECKPOINT).unlink()
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    assert_same_results(run, only_run(reference))


def test_save_writes_nothing_but_tensors_numbers_and_strings(tmp_path: Path) -> None:
    """Every global the archive's pickle names is one that weights_only allows."""
    save_checkpoint(tmp_path, genuine_state())
    with zipfile.ZipFile(tmp_path / CHECKPOINT) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        opcodes = [op.name for op, _, _ in pickletools.genops(archive.read(name))]
    assert "REDUCE" in opcodes  # tensors are rebuilt by torch's allowed functions
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / CHECKPOINT) == []
    buffer = io.BytesIO((tmp_path / CHECKPOINT).read_bytes())
    assert isinstance(torch.load(buffer, weights_only=True)["state"], str)  # JSON counters
