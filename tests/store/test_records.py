"""The run-record format: round trips, schema 0 (unversioned) records, and bad records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dml_bench.store.records import (
    LEGACY_SETUP_FIELDS,
    SCHEMA_VERSION,
    RecordError,
    RunRecord,
    StatusRecord,
    SummaryRecord,
    flat_config,
    legacy_swept,
    sampler_name,
    schema_of,
    setup_of,
    variant_label,
)


def _record(**changes: Any) -> RunRecord:
    values: dict[str, Any] = {
        "run_id": "hershey-proxy_nca-seed1-abc",
        "method": "proxy_nca",
        "variant": "proxy_nca[scale=3.0]",
        "dataset": "hershey",
        "seed": 1,
        "family": "proxy",
        "sampler": "random",
        "method_config": {"scale": 3.0, "m_per_class": None},
        "dataset_config": {"max_classes": 10},
        "setup": {"lr": 0.01, "dataset.max_classes": 10},
        "swept": {"scale": 3.0},
        "options_changed": {"lr": 0.01},
        "config": {"lr": 0.01, "steps": 600, "device": "cpu"},
        "extra": {"num_train_classes": 5},
    }
    return RunRecord(**{**values, **changes})


def test_run_record_round_trips_through_json() -> None:
    record = _record()
    data = json.loads(json.dumps(record.to_json()))
    assert data["schema"] == SCHEMA_VERSION
    assert data["lr"] == 0.01 and data["num_train_classes"] == 5  # the flat config stays flat
    back = RunRecord.from_json(data, "folder")
    for name in ("run_id", "method", "variant", "dataset", "seed", "family", "sampler"):
        assert getattr(back, name) == getattr(record, name)
    assert back.setup == record.setup and back.swept == record.swept
    assert back.options_changed == {"lr": 0.01}
    assert back.method_config == record.method_config and back.schema == SCHEMA_VERSION


def test_report_roles_round_trip_and_default_to_none() -> None:
    record = _record(proxy_count_field="proxies_per_class", proxy_assignment="static")
    back = RunRecord.from_json(json.loads(json.dumps(record.to_json())), "folder")
    assert (back.proxy_count_field, back.proxy_assignment) == ("proxies_per_class", "static")
    older = {k: v for k, v in record.to_json().items() if not k.startswith("proxy_")}
    back = RunRecord.from_json(older, "folder")
    assert (back.proxy_count_field, back.proxy_assignment) == (None, None)
    with pytest.raises(RecordError, match="proxy_assignment"):
        RunRecord.from_json({**record.to_json(), "proxy_assignment": 1}, "folder")


def test_record_keys_win_over_config_fields_of_the_same_name() -> None:
    record = _record(config={"method": "stale", "variant": "", "seed": 9})
    data = record.to_json()
    assert (data["method"], data["variant"], data["seed"]) == ("proxy_nca", record.variant, 1)


def test_schema_0_record_is_read_from_its_own_keys() -> None:
    """An unversioned config.json (as written before records were versioned): setup from the
    schema-0 field list, swept values from the label with typed values from method_config,
    family guessed from the name only because it was not recorded."""
    old = {
        "run_id": "x",
        "method": "proxy_nca_dynamic",
        "variant": "proxy_nca_dynamic[proxies_per_class=0.5,scale=3.0]",
        "dataset": "hershey",
        "seed": 0,
        "method_config": {"proxies_per_class": 0.5, "scale": 3.0, "m_per_class": 4},
        "dataset_config": {"max_classes": 10, "fonts": ["a", "b"]},
        "lr": 0.001,
        "steps": 600,
        "device": "cpu",
        "num_workers": 0,
        "notes": [],
    }
    record = RunRecord.from_json(old, "x")
    assert record.schema == 0
    assert record.swept == {"proxies_per_class": 0.5, "scale": 3.0}
    assert record.setup == {
        "lr": 0.001,
        "steps": 600,
        "dataset.max_classes": 10,
        "dataset.fonts": "a,b",
    }
    assert record.family == "proxy" and record.sampler == "m_per_class:4"
    assert record.options_changed == {}


def test_recorded_family_and_sampler_win_over_inference() -> None:
    old = {"method": "proxy_like", "dataset": "d", "seed": 0, "family": "pair", "sampler": "s"}
    record = RunRecord.from_json(old, "folder")
    assert record.family == "pair" and record.sampler == "s" and record.run_id == "folder"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"dataset": "d", "seed": 0}, "'method'"),
        ({"method": "m", "dataset": "d", "seed": "x"}, "seed"),
        ({"method": "m", "dataset": "d", "seed": 0, "method_config": [1]}, "method_config"),
        ({"method": "m", "dataset": "d", "seed": 0, "schema": SCHEMA_VERSION + 1}, "upgrade"),
        ({"method": "m", "dataset": "d", "seed": 0, "schema": "1"}, "version number"),
        ({"method": "m", "dataset": "d", "seed": 0, "schema": 1, "setup": "x"}, "setup"),
    ],
)
def test_unusable_config_records_raise_naming_the_problem(data: dict[str, Any], named: str) -> None:
    with pytest.raises(RecordError, match=named):
        RunRecord.from_json(data, "f")


def test_variant_label_and_legacy_swept_are_inverse() -> None:
    swept = {"scale": 3.0, "denominator": "all"}
    label = variant_label("proxy_nca", swept)
    assert label == "proxy_nca[denominator=all,scale=3.0]"
    assert legacy_swept(label, {"scale": 3.0, "denominator": "all", "x": 1}) == swept
    assert variant_label("nca", {}) == "nca" and legacy_swept("nca", {"x": 1}) == {}


def test_sampler_and_setup_helpers() -> None:
    assert sampler_name(None) == "random" and sampler_name(4) == "m_per_class:4"
    config = {"lr": 1, "steps": 2, "device": "cpu", "dataset_config": {"a": {"b": 1}}}
    assert setup_of(config, ["steps", "lr", "missing"]) == {"lr": 1, "steps": 2, "dataset.a.b": 1}
    assert flat_config({"a": [1, 2], "b": {"c": None}}) == {"a": "1,2", "b.c": None}
    assert len(set(LEGACY_SETUP_FIELDS)) == len(LEGACY_SETUP_FIELDS)


def test_status_record_round_trip_and_validation() -> None:
    record = StatusRecord.now("interrupted", 7, "stopped")
    data = json.loads(json.dumps(record.to_json()))
    assert data["schema"] == SCHEMA_VERSION and data["pid"] > 0 and data["updated"]
    assert StatusRecord.from_json(data) == record
    old = {"status": "completed", "step": 3, "reason": None, "updated": "now"}  # schema 0
    assert (
        StatusRecord.from_json(old).status == "completed" and StatusRecord.from_json(old).pid == 0
    )
    with pytest.raises(RecordError, match="unknown status"):
        StatusRecord.from_json({"status": "done", "step": 1})
    with pytest.raises(RecordError, match="step"):
        StatusRecord.from_json({"status": "running", "step": "x"})


def test_summary_record_json_and_times_of_any_schema() -> None:
    summary = SummaryRecord("r", "m", "m", "d", 0, 10, 1.5, {"recall@1": 0.5}, {}, 10)
    data = summary.to_json()
    assert data["schema"] == SCHEMA_VERSION and data["status"] == "completed"
    assert SummaryRecord.times(data) == (1.5, 10.0)
    assert SummaryRecord.times({"train_seconds": "x"}) == (None, None)
    assert schema_of({}, "summary.json") == 0


def test_a_tuned_runs_learning_rate_is_its_own_but_an_untuned_runs_is_set_up() -> None:
    from dml_bench.methods.space import TUNABLE_RUN_OPTIONS
    from dml_bench.store.records import TUNED_RUN_FIELDS, comparison_key

    assert TUNED_RUN_FIELDS == TUNABLE_RUN_OPTIONS
    tuning = {"study": "s", "budget": "12 trials x 600 steps"}
    a = {"steps": 600, "lr": 0.0016, "weight_decay": 0.0, "batch_size": 64}
    b = {"steps": 600, "lr": 0.0027, "weight_decay": 1e-4, "batch_size": 64}
    # tuned with one budget: comparable whatever lr each study chose
    assert comparison_key("hershey", a, tuning) == comparison_key("hershey", b, tuning)
    # untuned, or tuned with another budget: lr is part of the set-up / the budget differs
    assert comparison_key("hershey", a, None) != comparison_key("hershey", b, None)
    other = {**tuning, "budget": "20 trials x 600 steps"}
    assert comparison_key("hershey", a, tuning) != comparison_key("hershey", a, other)
    # the rest of the set-up still separates tuned runs
    c = {**a, "batch_size": 32}
    assert comparison_key("hershey", a, tuning) != comparison_key("hershey", c, tuning)
