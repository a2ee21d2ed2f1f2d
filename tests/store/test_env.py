"""env.json: the software and hardware that produced a run."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from dml_bench.store import env
from dml_bench.store.records import SCHEMA_VERSION


def test_package_versions_name_installed_packages_and_none_for_missing() -> None:
    versions = env.package_versions(extra=("surely-not-installed-dml-pkg",))
    assert versions["torch"] == metadata.version("torch")
    assert versions["surely-not-installed-dml-pkg"] is None
    assert set(env.PACKAGES) <= set(versions)


def test_git_commit_matches_git_or_is_none_outside_a_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = Path(env.__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True)
    commit = env.git_commit()
    if head.returncode == 0:
        assert commit is not None and commit.removesuffix("-dirty") == head.stdout.strip()
    else:
        assert commit is None

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(env.subprocess, "run", no_git)
    assert env.git_commit() is None


def test_environment_record_is_versioned_json_naming_device_and_origins() -> None:
    record = env.environment_record(
        torch.device("cpu"), {"distribution": "built-in", "version": ""}, None
    )
    assert json.loads(json.dumps(record)) == record
    assert record["schema"] == SCHEMA_VERSION
    assert record["python"] == sys.version.split()[0]
    assert record["platform"] == platform.platform()
    assert record["device"] == "cpu" and record["torch_threads"] == torch.get_num_threads()
    assert record["dataset_origin"] == {"distribution": "built-in", "version": ""}
    assert record["packages"]["torch"] == metadata.version("torch")
