"""Planning: a request becomes resolved run configs, every error found before training."""

from __future__ import annotations

import dataclasses

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
        (0, "proxy_nca", "proxy_nca[denominator=all]"),  # scale 9 is the default
        (0, "nca", "nca"),
        (1, "proxy_nca", "proxy_nca[denominator=all,scale=3.0]"),
        (1, "proxy_nca", "proxy_nca[denominator=all]"),
        (1, "nca", "nca"),
    ]
    assert configs[0].swept_fields == ("denominator", "scale") and configs[2].swept_fields == ()
    assert configs[1].swept_fields == ("denominator",)
    assert configs[0].method_config.scale == 3.0  # converted to the field's type
    assert len({c.run_id() for c in configs}) == 6


def test_restating_a_default_keeps_the_run_id_and_the_label() -> None:
    """``--set proxy_nca.scale=9`` (9 is the default) is the plain method: same run id and same
    label, so its seeds pool with the plain runs. At a1469a8 the label was
    ``proxy_nca[scale=9.0]`` and the two never pooled."""
    plain = plan_runs(request())[0]
    for value in ("9", "9.0"):
        restated = plan_runs(request(method_params={"proxy_nca": {"scale": [value]}}))[0]
        assert restated.variant == plain.variant == "proxy_nca"
        assert restated.swept_fields == ()
        assert restated.run_id() == plain.run_id()
    changed = plan_runs(request(method_params={"proxy_nca": {"scale": ["3"]}}))[0]
    assert changed.variant == "proxy_nca[scale=3.0]" and changed.run_id() != plain.run_id()


def test_run_ids_carry_the_methods_source_hash() -> None:
    """The run id hashes the method's code: the five default methods' ids changed when it came
    in (a1469a8 planned the ids below); without the hash, everything else hashes as before.

    Records written before the default became an evaluation every 100 steps (issue 20) were
    planned with ``eval_every=200``: asked for that, planning gives their ids.


    proxy_nca_dynamic's id moved on purpose when its loss became the paper's (the config gained
    ``negative_proxies``): a record of the earlier, collapsing loss is not resumed as this one."""
    methods = ("proxy_nca", "proxy_nca_dynamic", "triplet_semihard", "lifted_structure", "nca")
    old_default = ExperimentRequest(methods=methods, run_params={"eval_every": 200})
    configs = plan_runs(old_default)
    assert all(len(c.method_source_hash) == 16 for c in configs)
    before = [dataclasses.replace(c, method_source_hash="").run_id() for c in configs]
    assert before == [  # as planned at a1469a8, before the code hash
        "hershey-proxy_nca-seed0-b3c1fd3c75",
        "hershey-proxy_nca_dynamic-seed0-2c71b55abb",
        "hershey-triplet_semihard-seed0-47b3c101a7",
        "hershey-lifted_structure-seed0-e6a66c445f",
        "hershey-nca-seed0-d49f8fd73d",
    ]
    assert not {c.run_id() for c in configs} & set(before)


def test_editing_a_methods_source_makes_a_new_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """At a1469a8 the run id ignored the method's code: an edited loss was "already completed"."""
    from dml_bench.methods import code

    first = plan_runs(request())[0]
    real = code.module_source

    def edited(name: str) -> bytes | None:
        source = real(name)
        return None if source is None else source + b"\n# edited\n"

    monkeypatch.setattr(code, "module_source", edited)
    second = plan_runs(request())[0]
    assert second.method_source_hash != first.method_source_hash
    assert second.run_id() != first.run_id() and second.variant == first.variant


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
