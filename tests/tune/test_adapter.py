"""The adapter: a trial's parameters become a RunConfig checked like any other."""

from __future__ import annotations

import pytest

from dml_bench.errors import ConfigError
from dml_bench.train.plan import ExperimentRequest, plan_runs
from dml_bench.tune.adapter import trial_config


def base(method: str) -> object:
    return plan_runs(ExperimentRequest(methods=(method,)))[0]


def test_method_and_run_parameters_land_in_their_configs() -> None:
    config = trial_config(base("proxy_nca"), {"scale": 2.5, "loss_lr": 0.03, "lr": 0.002})  # type: ignore[arg-type]
    assert config.method_config.scale == 2.5 and config.method_config.loss_lr == 0.03
    assert config.lr == 0.002
    untouched = base("proxy_nca")
    assert config.method_config.denominator == untouched.method_config.denominator  # type: ignore[attr-defined]
    assert config.identity() != untouched.identity()  # type: ignore[attr-defined]


def test_values_are_checked_by_the_method_config() -> None:
    with pytest.raises(ConfigError, match="neg_margin"):
        trial_config(base("lifted_structure"), {"neg_margin": 0.1, "pos_margin": 0.3})  # type: ignore[arg-type]


def test_a_parameter_outside_the_space_is_a_bug() -> None:
    with pytest.raises(KeyError, match="denominator"):
        trial_config(base("proxy_nca"), {"denominator": "all"})  # type: ignore[arg-type]
