"""Search spaces on method specs: every built-in declares one with citations; bad ones are refused."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from dml_bench.errors import PluginError
from dml_bench.methods import BUILTIN_METHODS, METHODS, SearchParam
from dml_bench.methods.space import TUNABLE_RUN_OPTIONS


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_every_builtin_declares_a_cited_space_including_the_network_lr(name: str) -> None:
    spec = METHODS.get(name)
    config = spec.default_config()
    fields = {f.name for f in dataclasses.fields(config)}
    assert "lr" in {p.name for p in spec.search_space}
    for param in spec.search_space:
        assert len(param.citation) > 20, param
        if param.scope == "method":
            assert param.name in fields
            default = getattr(config, param.name)
            # the hand-picked default lies inside the searched range
            assert param.contains(default), (param, default)
        else:
            assert param.name in TUNABLE_RUN_OPTIONS


def test_lifted_structure_ranges_always_give_a_valid_config() -> None:
    spec = METHODS.get("lifted_structure")
    space = {p.name: p for p in spec.search_space}
    # the worst corner: the largest positive margin against the smallest negative one
    spec.make_config(
        {"neg_margin": space["neg_margin"].low, "pos_margin": space["pos_margin"].high}
    )


BAD = [
    (SearchParam("scale", "float", 2.0, 1.0, citation="x"), "low (2.0) must be below high"),
    (
        SearchParam("scale", "float", 0.0, 1.0, log=True, citation="x"),
        "log-scale range needs low > 0",
    ),
    (SearchParam("scale", "float", 1.0, math.inf, citation="x"), "finite numbers"),
    (SearchParam("scale", "float", 1.0, 2.0), "needs a citation"),
    (SearchParam("nope", "float", 1.0, 2.0, citation="x"), "not a field of the method's config"),
    (
        SearchParam("steps", "int", 1, 9, scope="run", citation="x"),
        "must be one of the run options",
    ),
    (SearchParam("scale", "categorical", choices=(1.0,), citation="x"), "2+ choices"),
    (SearchParam("scale", "int", 1.5, 3, citation="x"), "integer bounds"),
    (SearchParam("scale", "normal", 1, 3, citation="x"), "kind must be"),  # type: ignore[arg-type]
    (SearchParam("scale", "int", 1, 3, relative=True, citation="x"), "True only for a float"),
    (SearchParam("scale", "float", -1.0, 3.0, relative=True, citation="x"), "must be positive"),
]


@pytest.mark.parametrize(("param", "message"), BAD)
def test_a_malformed_search_space_is_refused_when_the_spec_is_built(
    param: SearchParam, message: str
) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        dataclasses.replace(METHODS.get("nca"), search_space=(param,))


def test_a_parameter_listed_twice_is_refused() -> None:
    param = METHODS.get("nca").search_space[0]
    with pytest.raises(PluginError, match="more than once"):
        dataclasses.replace(METHODS.get("nca"), search_space=(param, param))


def test_a_space_that_is_not_a_tuple_is_refused() -> None:
    with pytest.raises(PluginError, match="must be a tuple"):
        dataclasses.replace(METHODS.get("nca"), search_space=list(METHODS.get("nca").search_space))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("param", "value", "why"),
    [
        (
            SearchParam("s", "float", 0.01, 1, log=True, citation="x"),
            0.001,
            "below the range's low bound 0.01",
        ),
        (SearchParam("s", "float", 0.01, 1, citation="x"), 2, "above the range's high bound 1"),
        (SearchParam("s", "int", 1, 20, citation="x"), 2.5, "2.5 is not an integer"),
        (SearchParam("s", "float", 0, 1, citation="x"), None, "None is not a number"),
        (SearchParam("s", "float", 0, 1, citation="x"), True, "True is not a number"),
        (SearchParam("s", "float", 0, 1, citation="x"), math.nan, "nan is not finite"),
        (SearchParam("s", "categorical", choices=("a", "b"), citation="x"), "c", "not one of a, b"),
    ],
)
def test_a_value_outside_a_space_says_why(param: SearchParam, value: object, why: str) -> None:
    assert why in str(param.why_outside(value)) and not param.contains(value)


def test_the_bounds_and_the_choices_are_inside() -> None:
    space = SearchParam("s", "float", 0.01, 1, log=True, citation="x")
    assert space.why_outside(0.01) is None and space.why_outside(1) is None
    assert SearchParam("s", "int", 1, 20, citation="x").why_outside(20.0) is None
    assert SearchParam("s", "categorical", choices=("a", "b"), citation="x").contains("b")


def test_a_relative_range_scales_with_the_base_value() -> None:
    lr = SearchParam("lr", "float", 0.1, 10.0, log=True, scope="run", relative=True, citation="x")
    assert lr.describe() == "lr: float in [0.1x, 10x] the run's lr, log scale"
    for base in (1e-3, 1e-6, 0.5):
        absolute = lr.resolve(base)
        assert not absolute.relative and absolute.log
        assert math.isclose(absolute.low or 0, base / 10) and math.isclose(
            absolute.high or 0, base * 10
        )
        assert absolute.contains(base) and not absolute.contains(base * 11)
    plain = SearchParam("scale", "float", 1.0, 16.0, citation="x")
    assert plain.resolve(123.0) is plain
    for bad in (0.0, -1e-3, math.inf, None, True):
        with pytest.raises(ValueError, match="relative range needs a"):
            lr.resolve(bad)
