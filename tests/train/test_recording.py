"""What a run records about itself when it starts and when it ends."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from dml_bench.store.records import (
    LEGACY_SETUP_FIELDS,
    SCHEMA_VERSION,
    RunRecord,
    legacy_setup,
)
from dml_bench.store.write import RunFolder
from dml_bench.train import plan_runs
from dml_bench.train.config import RunConfig, setup_field_names
from dml_bench.train.data import RunData, load_run_data
from dml_bench.train.recording import run_record, summary_record, write_run_records
from tests.train.conftest import tiny_request


@pytest.fixture(scope="module")
def swept_run(data_root: Path) -> tuple[RunConfig, RunData]:
    request = tiny_request(data_root, ("proxy_nca_dynamic",), lr="0.01", device="cpu")
    request = dataclasses.replace(request, method_params={"proxy_nca_dynamic": {"scale": ["3"]}})
    config = plan_runs(request)[0]
    return config, load_run_data(config)


def test_the_record_says_what_the_report_needs(swept_run: tuple[RunConfig, RunData]) -> None:
    config, data = swept_run
    record = run_record(config, "r1", data)
    assert record.family == "proxy"  # declared by the method's spec
    assert (record.proxy_count_field, record.proxy_assignment) == ("proxies_per_class", "dynamic")
    assert record.sampler == "m_per_class:4"  # proxy_nca_dynamic needs positives
    assert record.swept == {"scale": 3.0} and record.variant == "proxy_nca_dynamic[scale=3.0]"
    assert record.options_changed["lr"] == 0.01 and record.options_changed["steps"] == 6
    assert "method" not in record.options_changed and "seed" not in record.options_changed
    assert record.setup["lr"] == 0.01 and record.setup["dataset.max_classes"] == 24
    assert "device" not in record.setup and "data_root" not in record.setup
    assert record.extra["num_train_classes"] == len(data.train.classes)


def test_the_record_reads_back_the_same(swept_run: tuple[RunConfig, RunData]) -> None:
    config, data = swept_run
    written = json.loads(json.dumps(run_record(config, "r1", data).to_json(), default=str))
    back = RunRecord.from_json(written, "r1")
    assert back.schema == SCHEMA_VERSION and back.swept == {"scale": 3.0}
    assert back.family == "proxy" and back.seed == config.seed
    assert back.proxy_assignment == "dynamic"
    # Today's setup fields are those schema 0 implied, so old and new runs compare alike.
    assert back.setup == legacy_setup(written)
    assert setup_field_names() == sorted(LEGACY_SETUP_FIELDS)


def test_records_are_written_once(tmp_path: Path, swept_run: tuple[RunConfig, RunData]) -> None:
    config, data = swept_run
    folder = RunFolder(tmp_path, resumed=False)
    write_run_records(config, folder, data, torch.device("cpu"))
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["schema"] == SCHEMA_VERSION and env["device"] == "cpu"
    (tmp_path / "config.json").write_text('{"kept": true}')
    write_run_records(config, folder, data, torch.device("cpu"))  # a resumed run
    assert json.loads((tmp_path / "config.json").read_text()) == {"kept": True}


def test_summary_takes_the_last_row_and_the_best_by_recall(
    swept_run: tuple[RunConfig, RunData],
) -> None:
    config, _ = swept_run
    rows = [
        {"step": 0, "epoch": 0.0, "elapsed_s": 0.0, "eval_s": 1.0, "recall@1": 0.2},
        {"step": 3, "epoch": 0.5, "elapsed_s": 2.0, "eval_s": 1.0, "recall@1": 0.6},
        {"step": 6, "epoch": 1.0, "elapsed_s": 4.0, "eval_s": 1.0, "recall@1": 0.5, "nmi": 0.3},
    ]
    summary = summary_record(config, "r1", rows, 4.0).to_json()
    assert summary["final"] == {"recall@1": 0.5, "nmi": 0.3}
    assert summary["best"] == {"recall@1": 0.6, "nmi": None} and summary["best_step"] == 3
    assert summary["steps"] == 6 and summary["schema"] == SCHEMA_VERSION


def test_the_record_identifies_the_methods_code(swept_run: tuple[RunConfig, RunData]) -> None:
    """config.json says which code computed the run (at a1469a8 it held only the distribution
    and its version, which an edited editable install keeps); the hash is the run id's."""
    config, data = swept_run
    code = run_record(config, "r1", data).to_json()["method_code"]
    assert code["source_hash"] == config.method_source_hash and len(code["source_hash"]) == 16
    assert "dml_bench.methods.proxy_nca_dynamic" in code["modules"]
    assert code["distribution"] and "version" in code
    parsed = RunRecord.from_json(run_record(config, "r1", data).to_json(), "r1")
    assert parsed.source_hash == config.method_source_hash
    old = {k: v for k, v in run_record(config, "r1", data).to_json().items() if k != "method_code"}
    assert RunRecord.from_json(old, "r1").source_hash == ""  # older records still read
