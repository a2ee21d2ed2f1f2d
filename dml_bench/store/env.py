"""The environment part of a run record: what software and hardware produced it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from dml_bench.store.records import SCHEMA_VERSION

PACKAGES = (
    "dml-bench",
    "torch",
    "torchvision",
    "pytorch-metric-learning",
    "numpy",
    "scikit-learn",
    "pandas",
    "faiss-cpu",
    "hershey-fonts",
)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES + extra:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the dml-bench checkout, if it runs from one (editable installs)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_record(device: torch.device) -> dict[str, Any]:
    record: dict[str, Any] = {"device": str(device), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        record["device_name"] = torch.cuda.get_device_name(device)
        record["cuda"] = torch.version.cuda
        record["cudnn"] = torch.backends.cudnn.version()
    else:
        record["device_name"] = platform.processor() or platform.machine()
    return record


def environment_record(
    device: torch.device,
    method_origin: dict[str, str],
    dataset_origin: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``env.json``: what software and hardware produced a run (``results/README.md``)."""
    return {
        "schema": SCHEMA_VERSION,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "method_origin": method_origin,
        "dataset_origin": dataset_origin or {"distribution": "built-in", "version": ""},
        **device_record(device),
    }


def machine_load() -> float | None:
    """The machine's 1-minute load average per CPU core (``os.getloadavg``; None where the
    platform has none): how busy the machine was around a run's evaluation, others' work
    included. Recorded beside the wall clock, which depends on it."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return None
