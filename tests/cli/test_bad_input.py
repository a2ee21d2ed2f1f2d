"""Bad input: exit code 2, one paragraph naming the offending value and the fix, no traceback, and
the results directory exactly as it was.

A module-scoped results directory holds one small completed run; every case is run against it
and every file in it (the run's lock file included) must keep its exact bytes, and no file may
appear: errors are found before any run folder is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import Result

from dml_bench.data import fakes
from tests.cli.helpers import (
    describe,
    file_hashes,
    invoke,
    read_status,
    run_args,
    run_folders,
    shared_data_root,
)


@dataclass(frozen=True)
class Paths:
    results: Path  # holds one completed run
    scratch: Path  # config files, fake data trees, a regular file to put paths under
    data_root: Path


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    data_root = shared_data_root(tmp_path_factory)
    results = tmp_path_factory.mktemp("results")
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    scratch = tmp_path_factory.mktemp("scratch")
    (scratch / "not-toml.toml").write_text("[run\nsteps = ")
    (scratch / "run-key.toml").write_text("[run]\nnosuchkey = 1\n")
    (scratch / "method-key.toml").write_text("[methods.proxy_nca]\nnosuchparam = 2.0\n")
    (scratch / "table.toml").write_text("[runs]\nsteps = 3\n")
    (scratch / "a-file").write_text("a regular file, not a directory")
    (scratch / "empty-results").mkdir()
    return Paths(results, scratch, data_root)


def _check_user_error(result: Result, *named: str) -> str:
    """Exit 2, a clean one-paragraph message that names each of ``named``; returns the message."""
    assert result.exit_code == 2, describe(result)
    assert isinstance(result.exception, SystemExit), describe(result)  # nothing else escaped
    assert "Traceback" not in result.output
    assert "Error:" in result.output, result.output
    message = result.output[result.output.index("Error:") :].strip()
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    flat = " ".join(message.split())  # the CLI wraps lines; a value may straddle a break
    for value in named:
        assert value in flat, f"{value!r} not named in:\n{message}"
    return message


# (case id, extra arguments after the tiny command, methods, values the message must name)
RUN_CASES: list[tuple[str, list[str], str, list[str]]] = [
    ("unknown_method", ["--methods", "nosuch"], "proxy_nca", ["'nosuch'", "Valid methods"]),
    ("empty_methods", ["--methods", ""], "proxy_nca", ["--methods is empty"]),
    ("empty_seeds", ["--seeds", ""], "proxy_nca", ["--seeds is empty"]),
    ("empty_dataset", ["--dataset", ""], "proxy_nca", ["--dataset is empty"]),
    ("unknown_dataset", ["--dataset", "nosuch"], "proxy_nca", ["'nosuch'", "hershey"]),
    ("unknown_trunk", ["--trunk", "nosuch"], "proxy_nca", ["'nosuch'", "small_cnn"]),
    ("unknown_preset", ["--preset", "nosuch"], "proxy_nca", ["'nosuch'", "nofuss"]),
    ("unknown_run_key", ["--set", "nosuchfield=1"], "proxy_nca", ["'nosuchfield'", "steps"]),
    ("misspelt_run_key", ["--set", "stesp=3"], "proxy_nca", ["'stesp'", "Did you mean 'steps'"]),
    ("seed_as_run_option", ["--set", "seed=3"], "proxy_nca", ["'seed'", "--seeds"]),
    ("internal_field", ["--set", "variant=x"], "proxy_nca", ["'variant'", "cannot be set"]),
    ("unknown_method_key", ["--set", "proxy_nca.nosuch=1"], "proxy_nca", ["'nosuch'", "scale"]),
    (
        "unknown_dataset_key",
        ["--set", "dataset.nosuch=1"],
        "proxy_nca",
        ["'nosuch'", "max_classes"],
    ),
    ("set_without_equals", ["--set", "noequals"], "proxy_nca", ["noequals", "KEY=VALUE"]),
    ("steps_zero", ["--steps", "0"], "proxy_nca", ["steps", "got 0"]),
    ("eval_every_zero", ["--eval-every", "0"], "proxy_nca", ["eval_every", "got 0"]),
    ("negative_lr", ["--lr", "-1"], "proxy_nca", ["lr", "-1"]),
    ("val_classes_out_of_range", ["--val-classes", "1.5"], "proxy_nca", ["val_classes", "1.5"]),
    ("scale_not_a_number", ["--set", "proxy_nca.scale=abc"], "proxy_nca", ["scale", "'abc'"]),
    ("lr_not_a_number", ["--set", "lr=abc"], "proxy_nca", ["lr", "'abc'"]),
    ("unknown_optimizer", ["--optimizer", "foo"], "proxy_nca", ["'foo'", "rmsprop"]),
    ("unknown_device", ["--device", "tpu"], "proxy_nca", ["'tpu'", "cpu"]),
    ("seeds_not_integers", ["--seeds", "a,b"], "proxy_nca", ["'a,b'", "--seeds 0,1,2"]),
    ("seed_twice", ["--seeds", "0,0"], "proxy_nca", ["'0,0'", "twice"]),
    (
        "batch_cannot_hold_m_per_class",
        ["--batch-size", "6"],
        "triplet_semihard",
        ["6", "m_per_class=4", "--batch-size 8"],
    ),
    ("too_few_classes", ["--set", "dataset.max_classes=2"], "proxy_nca", ["max_classes=2", "4"]),
    (
        "too_few_images_per_class",
        ["--set", "dataset.images_per_class=1"],
        "proxy_nca",
        ["images_per_class", "got 1"],
    ),
    (
        "batch_larger_than_the_train_split",
        ["--set", "dataset.max_classes=4", "--batch-size", "64"],
        "proxy_nca",
        ["64", "--batch-size"],
    ),
    (
        "parameter_the_method_lacks",
        ["--set", "triplet_semihard.scale=3"],
        "triplet_semihard",
        ["'scale'", "margin"],
    ),
    ("set_names_another_method", ["--set", "nca.scale=1"], "proxy_nca", ["'nca'", "--methods"]),
    ("folder_dataset_without_path", ["--dataset", "folder:"], "proxy_nca", ["folder:"]),
]


@pytest.mark.parametrize(
    ("extra", "methods", "named"),
    [pytest.param(extra, methods, named, id=case) for case, extra, methods, named in RUN_CASES],
)
def test_bad_run_option(paths: Paths, extra: list[str], methods: str, named: list[str]) -> None:
    before = file_hashes(paths.results)
    result = invoke(run_args(paths.results, *extra, methods=methods), paths.data_root)
    _check_user_error(result, *named)
    assert file_hashes(paths.results) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_on_a_cpu_machine(paths: Paths) -> None:
    before = file_hashes(paths.results)
    result = invoke(run_args(paths.results, "--device", "cuda"), paths.data_root)
    _check_user_error(result, "--device cuda", "--device cpu")
    assert file_hashes(paths.results) == before


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("not-toml.toml", ["not-toml.toml", "not valid TOML"]),
        ("run-key.toml", ["'nosuchkey'"]),
        ("method-key.toml", ["'nosuchparam'", "proxy_nca"]),
        ("table.toml", ["'runs'", "[run]"]),
        ("missing.toml", ["missing.toml"]),
    ],
)
def test_bad_config_file(paths: Paths, config: str, named: list[str]) -> None:
    before = file_hashes(paths.results)
    args = run_args(paths.results, "--config", str(paths.scratch / config))
    _check_user_error(invoke(args, paths.data_root), *named)
    assert file_hashes(paths.results) == before


def test_missing_data_root(paths: Paths) -> None:
    before = file_hashes(paths.results)
    missing = paths.scratch / "no-such-data"
    args = [
        "run",
        "--methods",
        "proxy_nca",
        "--dataset",
        "cub200",
        "--data-root",
        str(missing),
        "--results-dir",
        str(paths.results),
        "--no-progress",
    ]
    _check_user_error(invoke(args, paths.data_root), str(missing), "--download")
    assert file_hashes(paths.results) == before


def test_missing_path_dataset(paths: Paths) -> None:
    before = file_hashes(paths.results)
    folder = paths.scratch / "no-such-folder"
    args = ["run", "--methods", "proxy_nca", "--dataset", f"folder:{folder}"]
    args += ["--results-dir", str(paths.results), "--no-progress"]
    _check_user_error(invoke(args, paths.data_root), str(folder))
    assert file_hashes(paths.results) == before


def _cub_args(results: Path, root: Path) -> list[str]:
    """A tiny run on a fake CUB tree (small_cnn on 16 px crops, no downloads)."""
    return [
        "run",
        "--methods",
        "proxy_nca",
        "--dataset",
        "cub200",
        "--data-root",
        str(root),
        "--trunk",
        "small_cnn",
        "--no-pretrained",
        "--set",
        "resize=16",
        "--set",
        "crop=16",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--results-dir",
        str(results),
        "--no-progress",
    ]


def test_corrupt_image_names_the_file_and_leaves_a_resumable_run(paths: Paths) -> None:
    """A corrupt image is met only when it is read (checking every image up front would cost a
    full pass over the data), so the run folder exists by then: it is recorded as interrupted
    with the reason, and earlier runs are untouched."""
    root = fakes.make_cub200_tree(paths.scratch / "cub", n_classes=8, per_class=4)
    images = sorted((root / "CUB_200_2011" / "images").rglob("*.jpg"))
    corrupt = images[-1]  # a test-class image: read by the step-0 evaluation
    corrupt.write_bytes(b"this is not a JPEG")
    before = file_hashes(paths.results)
    result = invoke(_cub_args(paths.results, root), paths.data_root)
    _check_user_error(result, corrupt.name, "corrupt")
    after = file_hashes(paths.results)
    assert {k: v for k, v in after.items() if k in before} == before
    (new_run,) = [r for r in run_folders(paths.results) if r.name.startswith("cub200-")]
    status = read_status(new_run)
    assert status["status"] == "interrupted" and corrupt.name in status["reason"]
    for name in set(after) - set(before):  # remove it again for the other cases
        (paths.results / name).unlink()
    new_run.rmdir()


def test_results_dir_that_cannot_be_written(paths: Paths) -> None:
    target = paths.scratch / "a-file" / "results"
    before = file_hashes(paths.results)
    result = invoke(run_args(target), paths.data_root)
    _check_user_error(result, str(target), "--results-dir")
    assert file_hashes(paths.results) == before
    assert (paths.scratch / "a-file").read_text() == "a regular file, not a directory"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--results-dir", "{scratch}/empty-results"], ["empty-results", "holds no runs"]),
        (["--results-dir", "{scratch}/no-such-results"], ["no-such-results", "does not exist"]),
        (["--results-dir", "{results}", "--format", "xml"], ["'xml'", "latex"]),
    ],
    ids=["empty", "missing", "format_xml"],
)
def test_bad_report_request(paths: Paths, extra: list[str], named: list[str]) -> None:
    before = file_hashes(paths.results)
    args = ["report", *(a.format(scratch=paths.scratch, results=paths.results) for a in extra)]
    _check_user_error(invoke(args, paths.data_root), *named)
    assert file_hashes(paths.results) == before
    assert not (paths.results / "report").exists()
