"""Bad input to ``dml-bench tune``: one paragraph naming the value and the fix, exit 2, and
nothing already recorded lost or changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dml_bench.methods import METHODS
from tests.cli.helpers import describe, file_hashes, invoke, shared_data_root
from tests.cli.test_tune import tune_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A results directory holding a finished one-trial study ``s`` of proxy_nca."""
    results = tmp_path_factory.mktemp("existing") / "results"
    result = invoke(tune_args(results, "--study", "s", trials=1), data_root)
    assert result.exit_code == 0, describe(result)
    return results


def one_paragraph(output: str) -> str:
    assert output.startswith("Error: "), output
    assert "\n\n" not in output.strip() and "Traceback" not in output, output
    return " ".join(output.split())


CASES = {
    "unknown method": (["--methods", "proxy_ncaa"], "Unknown method 'proxy_ncaa'"),
    "no trials": (["--trials", "0"], "--trials 0: a study needs at least one trial"),
    "one fold": (["--folds", "1"], "--folds 1: the train classes are split into K"),
    "too few classes": (["--folds", "7"], "--folds 7 needs at least 14 train classes"),
    "unreachable storage": (
        ["--storage", "postgresql://tuner:s3cret@127.0.0.1:1/studies"],
        "Cannot open the study storage 'postgresql://tuner:***@127.0.0.1:1/studies'",
    ),
    "not a database": (["--storage", "redis://host/0"], "is not a database URL"),
    "other methods": (["--methods", "nca"], "exists for methods proxy_nca, not nca"),
    "other set-up": (
        ["--batch-size", "24"],
        "exists with other run options or dataset parameters",
    ),
    "val classes": (["--set", "val_classes=0.2"], "--val-classes cannot be combined"),
    "method sweep": (
        ["--set", "proxy_nca.scale=4,8"],
        "proxy_nca[scale=4.0], proxy_nca[scale=8.0] sets a method parameter",
    ),
    "method value": (
        ["--set", "proxy_nca.proxies_per_class=2"],
        "proxy_nca[proxies_per_class=2] sets a method parameter to another value",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_paragraph_exit_2_and_nothing_changes(
    case: str, existing: Path, data_root: Path
) -> None:
    extra, expected = CASES[case]
    before = file_hashes(existing)
    args = tune_args(existing, "--study", "s", trials=1)
    # later flags win; --methods and --trials are replaced where the case gives them
    for flag in ("--methods", "--trials"):
        if flag in extra:
            i = args.index(flag)
            del args[i : i + 2]
    result = invoke([*args, *extra], data_root)
    assert result.exit_code == 2, describe(result)
    message = one_paragraph(result.output)
    assert expected in message
    assert "s3cret" not in result.output
    assert file_hashes(existing) == before


def test_a_method_without_a_search_space_cannot_be_tuned(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spaceless = dataclasses.replace(METHODS.get("nca"), search_space=())
    monkeypatch.setitem(METHODS._entries, "nca", spaceless)
    result = invoke(tune_args(tmp_path / "results", methods="nca"), data_root)
    assert result.exit_code == 2, describe(result)
    message = one_paragraph(result.output)
    assert "Method 'nca' declares no search space" in message
    assert "search_space" in message
    assert not (tmp_path / "results").exists()


def test_run_tuned_without_a_study_says_how_to_make_one(tmp_path: Path, data_root: Path) -> None:
    from tests.cli.helpers import run_args

    result = invoke(run_args(tmp_path / "results", "--tuned"), data_root)
    assert result.exit_code == 2, describe(result)
    message = one_paragraph(result.output)
    assert "has no finished trial of 'proxy_nca'" in message and "dml-bench tune" in message


def test_a_study_name_reused_on_another_dataset_is_refused(
    existing: Path, data_root: Path, tmp_path: Path
) -> None:
    from dml_bench.data.fakes import make_folder_tree

    tree = make_folder_tree(tmp_path / "tree", n_classes=12, per_class=4)
    before = file_hashes(existing)
    args = [
        "tune",
        "--methods",
        "proxy_nca",
        "--trials",
        "1",
        "--folds",
        "3",
        "--dataset",
        f"folder:{tree}",
        "--set",
        "trunk=small_cnn",
        "--set",
        "pretrained=false",
        "--set",
        "resize=10",
        "--set",
        "crop=8",
        "--steps",
        "12",
        "--batch-size",
        "16",
        "--embedding-size",
        "8",
        "--no-progress",
        "--results-dir",
        str(existing),
        "--study",
        "s",
    ]
    result = invoke(args, data_root)
    assert result.exit_code == 2, describe(result)
    message = one_paragraph(result.output)
    assert "The study 's'" in message and "exists for dataset hershey, not folder" in message
    assert "--study NAME" in message
    assert file_hashes(existing) == before
