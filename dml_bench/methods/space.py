"""What a method lets ``dml-bench tune`` search: one :class:`SearchParam` per tunable value.

A method declares its search space on its spec (``MethodSpec.search_space``, plugins too); a method
without one cannot be tuned. Every range cites where it comes from (the ``citation`` field), so a
study's report says why it searched there. The Reality Check (Musgrave et al., ECCV 2020, Sec. 4)
tunes every method's own hyperparameters and the learning rate with the same budget; dml-bench
does the same, with ranges declared next to each method's config.

A parameter of ``scope="method"`` is a field of the method's config (e.g. Proxy-NCA's ``scale``);
``scope="run"`` names a run option shared by all methods (the network's ``lr``).

A ``relative`` parameter's ``low`` and ``high`` are factors of the value the study's base run has
(:func:`resolve_space`): the network's learning rate is searched one decade either side of the
run's own ``lr``, whichever optimiser and preset set it. An absolute ``[1e-4, 1e-2]`` fits Adam
from scratch on the glyphs (base ``1e-3``), but not the photo presets' RMSprop on a pretrained
trunk (``nofuss`` 1e-4 sits on its edge, ``mlrc`` 1e-6 outside it: every trial would train at 100x
the Reality Check's rate or more, and no method could get its defaults trial).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

Kind = Literal["float", "int", "categorical"]
Scope = Literal["method", "run"]

#: Run options a search space may name (``scope="run"``): what changes the optimisation of every
#: method alike. Others (steps, batch size, dataset) are the study's fixed budget and set-up.
TUNABLE_RUN_OPTIONS = frozenset({"lr", "weight_decay"})


@dataclass(frozen=True)
class SearchParam:
    """One searched value: ``float``/``int`` in ``[low, high]`` (``log``: sampled on a log
    scale), or ``categorical`` among ``choices``; ``citation`` says where the range comes from.
    ``relative``: ``low`` and ``high`` multiply the base run's value (see :func:`resolve_space`);
    only a float range can be relative."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False
    citation: str = ""
    scope: Scope = "method"
    relative: bool = False

    def describe(self) -> str:
        """``scale: float in [1, 16], log scale`` (what ``dml-bench methods --spaces`` prints)."""
        if self.kind == "categorical":
            return f"{self.name}: one of {', '.join(map(str, self.choices))}"
        scale = ", log scale" if self.log else ""
        if self.relative:
            return (
                f"{self.name}: {self.kind} in [{self.low:g}x, {self.high:g}x] the run's "
                f"{self.name}{scale}"
            )
        return f"{self.name}: {self.kind} in [{self.low:g}, {self.high:g}]{scale}"

    def base_value(self, method_config: Any, run: Any) -> Any:
        """This parameter's value in a base run: the field of its method config
        (``scope="method"``) or the run option (``scope="run"``) of ``run``."""
        return getattr(method_config if self.scope == "method" else run, self.name, None)

    def resolve(self, base: Any) -> SearchParam:
        """This parameter with absolute bounds for a base run whose value is ``base`` (itself
        when it is not relative). A base that is not a positive number cannot scale a range."""
        if not self.relative:
            return self
        assert self.low is not None and self.high is not None
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 0:
            raise ValueError(
                f"{self.name}: a relative range needs a positive base value, got {base!r}"
            )
        if not math.isfinite(base):
            raise ValueError(f"{self.name}: a relative range needs a finite base, got {base}")
        return replace(self, low=self.low * base, high=self.high * base, relative=False)

    def contains(self, value: Any) -> bool:
        return self.why_outside(value) is None

    def why_outside(self, value: Any) -> str | None:
        """Why ``value`` is not a point of this parameter's space (``None`` when it is one):
        a categorical value not among the choices, a value of the wrong type, or a number
        outside ``[low, high]`` (an int range also wants an integer)."""
        if self.kind == "categorical":
            return (
                None if value in self.choices else f"not one of {', '.join(map(str, self.choices))}"
            )
        assert self.low is not None and self.high is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if not math.isfinite(value):
            return f"{value} is not finite"
        if self.kind == "int" and not float(value).is_integer():
            return f"{value} is not an integer"
        if value < self.low:
            return f"{value:g} is below the range's low bound {self.low:g}"
        if value > self.high:
            return f"{value:g} is above the range's high bound {self.high:g}"
        return None


#: The network's learning rate, searched for every built-in method: one decade either side of the
#: run's ``lr`` (``[1e-4, 1e-2]`` at dml-bench's default 1e-3).
NETWORK_LR = SearchParam(
    "lr",
    "float",
    0.1,
    10.0,
    log=True,
    scope="run",
    relative=True,
    citation="one decade either side of the run's lr (dml-bench's default: Adam's 1e-3, Kingma & "
    "Ba, ICLR 2015; the presets: the paper's and the Reality Check's RMSprop rates); the Reality "
    "Check (Musgrave et al. 2020, Sec. 4) tunes the trunk's lr too",
)


def param_problems(param: Any, config_fields: Sequence[str]) -> list[str]:
    """What is wrong with one declared parameter (empty when it is well formed)."""
    if not isinstance(param, SearchParam):
        return [f"search_space entries must be SearchParam, got {type(param).__name__}"]
    where = f"search parameter {param.name!r}"
    problems = []
    if param.scope == "method" and param.name not in config_fields:
        problems.append(
            f"{where} is not a field of the method's config ({', '.join(config_fields)})"
        )
    elif param.scope == "run" and param.name not in TUNABLE_RUN_OPTIONS:
        problems.append(f"{where} must be one of the run options {sorted(TUNABLE_RUN_OPTIONS)}")
    elif param.scope not in ("method", "run"):
        problems.append(f"{where}: scope must be 'method' or 'run'")
    if not isinstance(param.citation, str) or not param.citation.strip():
        problems.append(f"{where} needs a citation saying where its range comes from")
    if param.kind == "categorical":
        if len(param.choices) < 2 or param.low is not None or param.high is not None or param.log:
            problems.append(f"{where}: a categorical needs 2+ choices and no low/high/log")
    elif param.kind in ("float", "int"):
        problems += _range_problems(param, where)
    else:
        problems.append(f"{where}: kind must be 'float', 'int' or 'categorical'")
    if param.relative is not False and (param.kind != "float" or param.relative is not True):
        problems.append(f"{where}: relative must be True or False, and True only for a float")
    elif param.relative and not (param.low or 0) > 0:
        problems.append(f"{where}: a relative range's factors must be positive")
    return problems


def resolve_space(space: Sequence[SearchParam], base: Mapping[str, Any]) -> tuple[SearchParam, ...]:
    """``space`` with every relative range scaled by ``base[name]`` (the study's base run's
    value of that parameter), so what Optuna samples, what the defaults trial is checked against
    and what the study record keeps are absolute ranges."""
    return tuple(param.resolve(base.get(param.name)) for param in space)


def _range_problems(param: SearchParam, where: str) -> list[str]:
    low, high = param.low, param.high
    numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in (low, high)
    )
    if not numbers or param.choices:
        return [f"{where}: a {param.kind} needs finite numbers low and high and no choices"]
    assert low is not None and high is not None
    if not low < high:
        return [f"{where}: low ({low}) must be below high ({high})"]
    if param.log and low <= 0:
        return [f"{where}: a log-scale range needs low > 0, got {low}"]
    if param.kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        return [f"{where}: an int range needs integer bounds"]
    return []


def space_problems(space: Any, config_fields: Sequence[str]) -> list[str]:
    """What is wrong with a spec's ``search_space`` (a tuple of :class:`SearchParam`)."""
    if not isinstance(space, tuple):
        return ["search_space must be a tuple of SearchParam"]
    problems = [p for param in space for p in param_problems(param, config_fields)]
    names = [getattr(p, "name", None) for p in space]
    duplicates = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if duplicates:
        problems.append(f"search_space names {', '.join(duplicates)} more than once")
    return problems


def space_from_table(
    table: Mapping[str, tuple[str, float, float, bool, str]], network_lr: bool = True
) -> tuple[SearchParam, ...]:
    """A method's ``{field: (kind, low, high, log, citation)}`` table as a search space, with the
    network's learning rate (:data:`NETWORK_LR`) searched too unless ``network_lr`` is false."""
    params = tuple(
        SearchParam(name, cast(Kind, kind), low, high, log=log, citation=citation)
        for name, (kind, low, high, log, citation) in table.items()
    )
    return (*params, NETWORK_LR) if network_lr else params
