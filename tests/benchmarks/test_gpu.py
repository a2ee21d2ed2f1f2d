"""benchmarks/gpu.py: its dry run exercises every part on CPU, so a GPU session runs a script
that is known to work end to end (the GPU figures themselves need a GPU)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _load():
    spec = importlib.util.spec_from_file_location("_benchmark_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_the_sampler_reports_na_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = _load()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with gpu.GpuSampler() as sampler:
        pass
    assert sampler.samples == [] and "n/a" in sampler.summary()


def test_the_sampler_summarises_busy_samples() -> None:
    gpu = _load()
    sampler = gpu.GpuSampler(samples=[0.0, 95.0, 100.0, 50.0, 0.0])
    assert "mean 82%" in sampler.summary() and ">= 90% in 67%" in sampler.summary()


def test_unknown_parts_are_refused() -> None:
    gpu = _load()
    with pytest.raises(SystemExit):
        gpu.parse_args(["--parts", "glyphs,warp"])


@pytest.mark.slow
def test_the_dry_run_runs_every_part_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DML_BENCH_DATA_ROOT", str(tmp_path / "data"))
    gpu = _load()
    gpu.main(["--dry-run", "--device", "cpu", "--out", str(tmp_path / "out"), "--workers", "0"])
    out = capsys.readouterr().out
    glyph_rows = [line for line in out.splitlines() if line.count("|") == 4 and "0." in line]
    assert {row.split(" | ")[0] for row in glyph_rows} == set(gpu.CPU_RECALL_AT_1)
    assert "[nofuss] decoded JPEGs:" in out and "[nofuss] prepared cache:" in out
    assert "GPU util n/a" in out
    assert "[eval]" in out and "ratio" in out
    diff = float(out.split("max |difference| of Recall@K and MAP@R: ")[1].split()[0])
    assert diff < 1e-4  # ours and PML agree on the same embeddings
    assert (tmp_path / "out" / "cars-data" / "cars196" / "cars_annos.mat").exists()
