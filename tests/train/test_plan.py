"""Planning: a request becomes resolved run configs, every error found before training."""

from __future__ import annotations

import pytest

from dml_bench.errors import ConfigError, UnknownNameError
from dml_bench.train.config import RunConfig
from dml_bench.train.plan import (
    NOT_SETTABLE,
    OWN_FIELD,
    ExperimentRequest,
    check_run_options,
    plan_runs,
    settable_run_options,
    split_dataset_name,
)

TINY = {"max_classes": 8, "images_per_class": 4, "image_size": 16}


def request(**changes: object) -> ExperimentRequest:
    values: dict[str, object] = {"methods": ("proxy_nca",), "dataset_params": TINY}
    return ExperimentRequest(**{**values, **changes})  # type: ignore[arg-type]


def test_every_seed_method_and_swept_combination_is_one_run() -> None:
    configs = plan_runs(
        request(
            methods=("proxy_nca", "nca"),
            seeds=(0, 1),
            method_params={"proxy_nca": {"scale": ["3", "9"], "denominator": ["all"]}},
        )
    )
    keys = [(c.seed, c.method, c.variant) for c in configs]
    assert keys == [
        (0, "proxy_nca", "proxy_nca[denominator=all,scale=3.0]"),
        (0, "proxy_nca", "proxy_nca[denominator=all,scale=9.0]"),
        (0, "nca", "nca"),
        (1, "proxy_nca", "proxy_nca[denominator=all,scale=3.0]"),
        (1, "proxy_nca", "proxy_nca[denominator=all,scale=9.0]"),
        (1, "nca", "nca"),
    ]
    assert configs[0].swept_fields == ("denominator", "scale") and configs[2].swept_fields == ()
    assert configs[0].method_config.scale == 3.0  # converted to the field's type
    assert len({c.run_id() for c in configs}) == 6


def test_a_sweeps_default_point_is_the_plain_run() -> None:
    """The label and the swept fields are not part of the identity: sweeping the default value
    names the same run folder as not sweeping at all."""
    plain = plan_runs(request())[0]
    swept = plan_runs(request(method_params={"proxy_nca": {"scale": ["9"]}}))[0]
    assert swept.variant == "proxy_nca[scale=9.0]" and plain.variant == "proxy_nca"
    assert swept.run_id() == plain.run_id()


def test_the_default_run_ids_are_those_of_the_records_already_written() -> None:
    """Planning moved modules; run ids must not move with it (they name existing folders).

    Records written before the default became an evaluation every 100 steps (issue 20) were
    planned with ``eval_every=200``: asked for that, planning gives their ids.


    proxy_nca_dynamic's id moved on purpose when its loss became the paper's (the config gained
    ``negative_proxies``): a record of the earlier, collapsing loss is not resumed as this one."""
    methods = ("proxy_nca", "proxy_nca_dynamic", "triplet_semihard", "lifted_structure", "nca")
    old_default = ExperimentRequest(methods=methods, run_params={"eval_every": 200})
    ids = [c.run_id() for c in plan_runs(old_default)]
    assert ids == [  # as planned before the run-record format had an owner
        "hershey-proxy_nca-seed0-b3c1fd3c75",
        "hershey-proxy_nca_dynamic-seed0-2c71b55abb",
        "hershey-triplet_semihard-seed0-47b3c101a7",
        "hershey-lifted_structure-seed0-e6a66c445f",
        "hershey-nca-seed0-d49f8fd73d",
    ]


def test_presets_fill_values_that_flags_override() -> None:
    config = plan_runs(request(preset="nofuss", run_params={"lr": "0.5"}))[0]
    assert config.optimizer == "rmsprop" and config.lr == 0.5 and config.preset == "nofuss"
    assert config.method_config.proxies_per_class == 1


def test_dataset_names_with_a_path() -> None:
    assert split_dataset_name("hershey") == ("hershey", {})
    assert split_dataset_name("folder:/data/x:y") == ("folder", {"path": "/data/x:y"})
    with pytest.raises(ConfigError, match="'csv:' needs a path"):
        split_dataset_name("csv:")


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"seed": 1}, "'seeds'"),
        ({"method": "nca"}, "'methods'"),
        ({"variant": "x"}, "filled in"),
        ({"swept_fields": "x"}, "filled in"),
        ({"stesp": 3}, "Did you mean 'steps'"),
        ({"zzz": 3}, "Valid run options are"),
    ],
)
def test_run_options_a_request_cannot_take(values: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        check_run_options(values)


def test_settable_options_are_the_run_config_fields_less_the_planned_ones() -> None:
    settable = set(settable_run_options())
    assert "lr" in settable and "device" in settable
    assert not settable & (set(OWN_FIELD) | NOT_SETTABLE)
    assert settable | set(OWN_FIELD) | NOT_SETTABLE == set(RunConfig.__dataclass_fields__)


def test_parameters_of_a_method_not_requested_are_an_error() -> None:
    with pytest.raises(ConfigError, match="'nca'.*not among the methods"):
        plan_runs(request(method_params={"nca": {"margin": ["1"]}}))


def test_errors_that_need_method_and_dataset_together_come_before_training() -> None:
    with pytest.raises(ConfigError, match="Batch size 6"):
        plan_runs(request(methods=("nca",), run_params={"batch_size": 6}))
    with pytest.raises(UnknownNameError, match="nosuch"):
        plan_runs(request(run_params={"trunk": "nosuch"}))
