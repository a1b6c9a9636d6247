"""The search-space DSL: a TOML file becomes a validated :class:`Space` that samples configs.

A space file has two sections. ``[study]`` says what to run (:class:`StudySettings`);
``[params]`` says the space. In ``[params]`` a plain value is a constant and an
inline table is a distribution::

    [params]
    hidden     = [ { int = [10, 99] }, { int = [10, 99] } ]   # one entry per hidden layer
    lr         = { log_uniform = [0.005, 0.5] }
    batch_size = { int = [10, 90], step = 10 }
    activation = { choice = ["relu", "leaky_relu"] }
    alpha      = { uniform = [0.0, 0.4], when = { activation = "leaky_relu" } }

Distributions are ``uniform``, ``log_uniform``, ``int`` (optional ``step``), ``log_int``
and ``choice``. ``when = { other = value }`` (or ``= [v1, v2]``, any of) makes a parameter
conditional: it is suggested only when every named parameter was suggested with one of
the listed values. ``hidden = { layers = <int dist or int>, nodes = <int dist or int> }``
gives a variable number of layers.

Optuna parameter names are the ``[params]`` keys, except for ``hidden``: its layers are
``hidden_1 .. hidden_L`` in both forms and the depth of the variable form is ``n_layers``.
Every name a user can write (activations, initializers, optimizers, losses, normalizers)
is checked against the registry the code uses, so the TOML keys are exactly the registry
keys. A file that breaks a rule raises :class:`~hpsearch.errors.SpaceError` naming the key
path, the rule and what was found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hpsearch._registry import did_you_mean, lookup
from hpsearch.errors import HPSearchError, SpaceError
from hpsearch.vocabulary import METRICS, PRUNERS, SAMPLERS, clip, safe_name, study_name_problem

__all__ = [
    "DISTRIBUTIONS",
    "METRICS",
    "PRUNERS",
    "SAMPLERS",
    "Space",
    "StudySettings",
    "load_space",
    "parse_space",
]

DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
#: parameters of the data pipeline rather than of the MLP
DATA_PARAMS = ("normalizer", "norm_axis")

_SECTIONS = ("study", "params")
_SCALES = {"uniform": "linear", "log_uniform": "log", "int": "int", "log_int": "log_int", "choice": "categorical"}
_UNNAMED = "<string>"


# --------------------------------------------------------------------------- small helpers


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool))


def _same(a, b) -> bool:
    """Equality that keeps ``true`` and ``1`` apart (Python does not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _num(x) -> str:
    """A number as a person would write it: 0.005, 1e-05, 10 (not 10.0)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


def _word(value) -> str:
    """A value in running text (describe): strings bare, booleans as in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _num(value) if _is_number(value) else str(value)


def _values_text(values) -> str:
    return " or ".join(repr(v) for v in values)


# --------------------------------------------------------------------------- value rules


@dataclass(frozen=True)
class _Rule:
    """What one parameter accepts; checks a value and describes itself in the error.

    ``kind`` is ``float``, ``int``, ``bool``, ``name`` (a key of ``registry()``) or
    ``any`` (a scalar, for MLP fields this module has no rule for yet).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = True
    family: str = ""
    registry: Callable[[], Mapping] | None = None

    def bounds(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        return f"{'<' if self.high_open else '<='} {_num(self.high)}"

    def problem(self, value, label: str = "") -> str | None:
        """``None`` if ``value`` fits, else ``"must be ..., got ..."``."""
        got = f"got {label}{value!r}"
        if self.kind == "name":
            if not isinstance(value, str):
                return f"must be {'an' if self.family[0] in 'aeiou' else 'a'} {self.family} name (a string), {got}"
            try:
                lookup(self.registry(), value, self.family)
            except HPSearchError as err:
                return str(err)
            return None
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, {got}"
        if self.kind == "int" and not _is_int(value):
            return f"must be an integer, {got}"
        if self.kind == "float" and not _is_number(value):
            return f"must be a number, {got}"
        if self.kind == "any":
            return None if _is_scalar(value) else f"must be a string, number or boolean, {got}"
        if self.kind == "float" and not math.isfinite(value):
            return f"must be a finite number, {got}"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self.bounds()}, {got}" if too_low or too_high else None

    def coerce(self, value):
        # TOML writes 1 for 1.0; the MLP should still get a float
        return float(value) if self.kind == "float" and _is_int(value) else value


def _registry(module: str, attr: str) -> Callable[[], Mapping]:
    # imported when first needed: the MLP core and the data module must not load at import time
    def get() -> Mapping:
        mod = __import__(module, fromlist=[attr])
        found = getattr(mod, attr)
        return found if isinstance(found, Mapping) else dict.fromkeys(found)

    return get


def _names(module: str, attr: str, family: str) -> _Rule:
    return _Rule("name", family=family, registry=_registry(module, attr))


_AT_LEAST_ONE = _Rule("int", low=1)

#: the data parameters' rules; the MLP's come from its own constraint table (_known_params)
_RULES: dict[str, _Rule] = {
    "normalizer": _names("hpsearch.data", "NORMALIZERS", "normalizer"),
    "norm_axis": _names("hpsearch.data", "NORM_AXES", "norm_axis"),
}


def _from_constraint(constraint) -> _Rule:
    """The DSL's rule for an MLP field, derived from ``hpsearch.mlp.CONSTRAINTS``."""
    if constraint.kind == "name":
        return _Rule("name", family=constraint.family, registry=lambda: dict.fromkeys(constraint.names()))
    if constraint.kind == "bool":
        return _Rule("bool")  # in a file, true or false only
    return _Rule(constraint.kind, low=constraint.low, high=constraint.high,
                 low_open=constraint.low_open, high_open=constraint.high_open)


@functools.cache
def _known_params() -> dict[str, _Rule]:
    """Every name ``[params]`` accepts: the fields of ``MLPConfig`` (each with the rule of
    its constraint; ``hidden``'s is per layer) plus the data parameters."""
    from hpsearch.mlp import MLPConfig

    known = {name: _from_constraint(c) for name, c in MLPConfig.constraints().items()}
    for name in DATA_PARAMS:
        known[name] = _RULES[name]
    return known


# --------------------------------------------------------------------------- study settings


@dataclass(frozen=True)
class StudySettings:
    """The ``[study]`` section: what to run. ``name`` defaults to the file's stem."""

    name: str
    dataset: str = "digits"
    validation: float = 0.2
    epochs: int = 20
    metric: str = "val_accuracy"
    trials: int = 100
    seed: int = 0
    sampler: str = "random"
    pruner: str = "none"
    test_top: int = 10  # how many of the best runs get a test-set score at the end

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"``, from the metric."""
        return METRICS[self.metric]


_STUDY_RULES: dict[str, _Rule] = {
    "validation": _Rule("float", low=0, high=1, low_open=True),
    "epochs": _AT_LEAST_ONE,
    "metric": _Rule("name", family="metric", registry=lambda: METRICS),
    "trials": _AT_LEAST_ONE,
    "seed": _Rule("int", low=0),
    "sampler": _Rule("name", family="sampler", registry=lambda: dict.fromkeys(SAMPLERS)),
    "pruner": _Rule("name", family="pruner", registry=lambda: dict.fromkeys(PRUNERS)),
    "test_top": _Rule("int", low=0),
}


def _parse_study(table, default_name: str) -> StudySettings:
    if not isinstance(table, dict):
        raise SpaceError("study", f"must be a table ([study]), got {table!r}")
    allowed = [f.name for f in dataclasses.fields(StudySettings)]
    values = {"name": default_name}
    for key, value in table.items():
        path = f"study.{key}"
        if key not in allowed:
            raise SpaceError(path, f"unknown key{did_you_mean(key, allowed)}")
        if key == "name":
            problem = study_name_problem(value)
            if problem:
                raise SpaceError(path, problem)
        elif key == "dataset":
            if not isinstance(value, str) or not value.strip():
                raise SpaceError(path, f"must be a non-empty string, got {clip(repr(value))}")
        else:
            rule = _STUDY_RULES[key]
            problem = rule.problem(value)
            if problem:
                raise SpaceError(path, problem)
            value = rule.coerce(value)
        values[key] = value
    return StudySettings(**values)


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class _Dist:
    kind: str  # one of DISTRIBUTIONS
    low: Any = None
    high: Any = None
    step: int = 1
    options: tuple = ()

    @property
    def scale(self) -> str:
        return _SCALES[self.kind]

    def suggest(self, trial: optuna.trial.BaseTrial, name: str):
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.options))
        if self.kind in ("uniform", "log_uniform"):
            return trial.suggest_float(name, self.low, self.high, log=self.kind == "log_uniform")
        if self.kind == "int":
            return trial.suggest_int(name, self.low, self.high, step=self.step)
        return trial.suggest_int(name, self.low, self.high, log=True)

    def to_optuna(self) -> optuna.distributions.BaseDistribution:
        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(self.options)
        if self.kind in ("uniform", "log_uniform"):
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.kind == "log_uniform")
        return optuna.distributions.IntDistribution(self.low, self.high, log=self.kind == "log_int", step=self.step)

    def can_be(self, value) -> bool:
        if self.kind == "choice":
            return any(_same(value, o) for o in self.options)
        if self.kind in ("int", "log_int"):
            return _is_int(value) and self.low <= value <= self.high and (value - self.low) % self.step == 0
        return _is_number(value) and self.low <= value <= self.high

    def largest(self):
        if self.kind != "choice":
            return self.high
        numbers = [o for o in self.options if _is_number(o)]
        return max(numbers) if numbers else None

    def smallest(self):
        if self.kind != "choice":
            return self.low
        numbers = [o for o in self.options if _is_number(o)]
        return min(numbers) if numbers else None

    def describe(self) -> str:
        if self.kind == "choice":
            return "choice {" + ", ".join(_word(o) for o in self.options) + "}"
        text = f"{self.kind.replace('_', '-')} {_num(self.low)}–{_num(self.high)}"
        return text + (f" step {self.step}" if self.step != 1 else "")


def _parse_dist(path: str, table: dict, name: str, rule: _Rule, *, allow_when: bool):
    """A distribution table -> (``_Dist``, raw ``when`` or ``None``)."""
    allowed = DISTRIBUTIONS + ("step",) + (("when",) if allow_when else ())
    for key in table:
        if key == "when" and not allow_when:
            raise SpaceError(f"{path}.when", "a condition is not allowed here")
        if key not in allowed:
            raise SpaceError(f"{path}.{key}", f"unknown distribution keyword{did_you_mean(key, allowed)}")
    kinds = [key for key in table if key in DISTRIBUTIONS]
    if not kinds:
        raise SpaceError(path, f"a distribution needs one of {', '.join(DISTRIBUTIONS)}; got keys {list(table)}")
    if len(kinds) > 1:
        raise SpaceError(path, f"one distribution per parameter, got both {kinds[0]} and {kinds[1]}")
    kind = kinds[0]
    if "step" in table and kind != "int":
        raise SpaceError(f"{path}.step", f"step goes only with int, not with {kind}")

    if rule.kind in ("name", "bool") and kind != "choice":
        raise SpaceError(path, f"{name} takes {'true or false' if rule.kind == 'bool' else 'a name'}; "
                               f"use choice = [...], not {kind}")
    if rule.kind == "int" and kind in ("uniform", "log_uniform"):
        raise SpaceError(path, f"{name} takes an integer; use int, log_int or choice, not {kind}")
    if rule.kind == "float" and kind in ("int", "log_int"):
        raise SpaceError(path, f"{name} takes a float; use uniform, log_uniform or choice, not {kind}")

    spec = table[kind]
    if kind == "choice":
        dist = _Dist("choice", options=_parse_options(f"{path}.choice", spec, rule))
    else:
        dist = _parse_range(path, kind, spec, table.get("step", 1), rule)
    return dist, table.get("when")


def _parse_options(path: str, options, rule: _Rule) -> tuple:
    if not isinstance(options, list):
        raise SpaceError(path, f"choice needs a list of options, got {options!r}")
    if not options:
        raise SpaceError(path, "choice needs at least one option, got []")
    out = []
    seen = set()  # (is it a boolean, value): true and 1 stay apart, 1 and 1.0 do not, as in _same
    for i, option in enumerate(options):
        if not _is_scalar(option):
            raise SpaceError(f"{path}[{i}]", f"an option must be a string, number or boolean, got {clip(repr(option))}")
        problem = rule.problem(option)
        if problem:
            raise SpaceError(f"{path}[{i}]", problem)
        option = rule.coerce(option)
        key = (isinstance(option, bool), option)
        if key in seen:
            raise SpaceError(f"{path}[{i}]", f"choice lists {clip(repr(option))} twice")
        seen.add(key)
        out.append(option)
    return tuple(out)


def _parse_range(path: str, kind: str, bounds, step, rule: _Rule) -> _Dist:
    integer = kind in ("int", "log_int")
    log = kind.startswith("log_")
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise SpaceError(path, f"{kind} needs [low, high], got {bounds!r}")
    if not all(_is_number(b) and not math.isnan(b) for b in bounds):
        raise SpaceError(path, f"{kind} bounds must be numbers, got {bounds!r}")
    if integer and not all(_is_int(b) for b in bounds):
        raise SpaceError(path, f"{kind} bounds must be integers, got {bounds!r}")
    low, high = bounds
    if log and not 0 < low < high:
        raise SpaceError(path, f"{kind} needs 0 < low < high, got {bounds!r}")
    if not low < high:
        raise SpaceError(path, f"{kind} needs low < high, got {bounds!r}")
    if not math.isfinite(low) or not math.isfinite(high):
        raise SpaceError(path, f"{kind} bounds must be finite, got {bounds!r}")
    if kind == "int":
        if not _is_int(step) or step < 1:
            raise SpaceError(f"{path}.step", f"step must be a positive integer, got {step!r}")
        if (high - low) % step:
            raise SpaceError(f"{path}.step", f"step {step} does not divide high - low = {high - low} "
                                             f"(int = {bounds!r})")
    for label, value in (("low ", low), ("high ", high)):
        problem = rule.problem(value, label)
        if problem:
            raise SpaceError(path, problem)
    return _Dist(kind, rule.coerce(low), rule.coerce(high), step if kind == "int" else 1)


def _parse_when(path: str, when) -> tuple[tuple[str, tuple], ...]:
    example = '{ activation = "leaky_relu" }'
    if not isinstance(when, dict) or not when:
        raise SpaceError(path, f"when needs a table like {example}, got {when!r}")
    out = []
    for target, values in when.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise SpaceError(f"{path}.{target}", "when needs a value or a non-empty list of values, got []")
        for value in values:
            if not _is_scalar(value):
                raise SpaceError(f"{path}.{target}", f"a condition value must be a string, number or boolean, "
                                                     f"got {value!r}")
        out.append((target, tuple(values)))
    return tuple(out)


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class _Param:
    """One ``[params]`` entry other than ``hidden``: a constant or a distribution."""

    name: str
    value: Any = None
    dist: _Dist | None = None
    when: tuple[tuple[str, tuple], ...] = ()

    def can_be(self, value) -> bool:
        return self.dist.can_be(value) if self.dist else _same(self.value, value)

    def possible(self) -> str:
        return f"is always {self.value!r}" if self.dist is None else f"is {self.dist.describe()}"

    def holds(self, config: dict) -> bool:
        return all(
            target in config and any(_same(config[target], v) for v in values) for target, values in self.when
        )

    def describe(self) -> str:
        text = f"{self.name} {self.dist.describe()}"
        if self.when:
            parts = [
                f"{t} = {_word(vs[0])}" if len(vs) == 1 else f"{t} in {{{', '.join(_word(v) for v in vs)}}}"
                for t, vs in self.when
            ]
            text += f" (when {' and '.join(parts)})"
        return text


def _parse_param(name: str, raw, rule: _Rule) -> _Param:
    path = f"params.{name}"
    if isinstance(raw, dict):
        dist, when = _parse_dist(path, raw, name, rule, allow_when=True)
        return _Param(name, dist=dist, when=() if when is None else _parse_when(f"{path}.when", when))
    if isinstance(raw, list):
        raise SpaceError(path, f"a list is not a value for {name}; a choice is written {{ choice = [...] }}, "
                               f"got {raw!r}")
    problem = rule.problem(raw)
    if problem:
        raise SpaceError(path, problem)
    return _Param(name, value=rule.coerce(raw))


@dataclass(frozen=True)
class _Hidden:
    """``hidden``: a list with one entry per layer, or ``layers`` x ``nodes`` (variable depth).

    Each entry, ``layers`` and ``nodes`` is a constant int or an int / log_int ``_Dist``.
    """

    layers: tuple = ()
    depth: Any = None
    nodes: Any = None

    @property
    def variable(self) -> bool:
        return self.depth is not None

    def max_depth(self) -> int:
        return self.depth.largest() if isinstance(self.depth, _Dist) else self.depth

    def dists(self) -> dict[str, _Dist]:
        """Optuna name -> distribution, in suggestion order."""
        if not self.variable:
            return {f"hidden_{k}": d for k, d in enumerate(self.layers, 1) if isinstance(d, _Dist)}
        out = {"n_layers": self.depth} if isinstance(self.depth, _Dist) else {}
        if isinstance(self.nodes, _Dist):
            out.update({f"hidden_{k}": self.nodes for k in range(1, self.max_depth() + 1)})
        return out

    def constants(self) -> dict:
        if not self.variable:
            return {f"hidden_{k}": d for k, d in enumerate(self.layers, 1) if not isinstance(d, _Dist)}
        out = {} if isinstance(self.depth, _Dist) else {"n_layers": self.depth}
        if not isinstance(self.nodes, _Dist) and not isinstance(self.depth, _Dist):
            out.update({f"hidden_{k}": self.nodes for k in range(1, self.depth + 1)})
        return out

    def suggest(self, trial) -> tuple[int, ...]:
        if not self.variable:
            return tuple(d.suggest(trial, f"hidden_{k}") if isinstance(d, _Dist) else d
                         for k, d in enumerate(self.layers, 1))
        depth = self.depth.suggest(trial, "n_layers") if isinstance(self.depth, _Dist) else self.depth
        return tuple(self.nodes.suggest(trial, f"hidden_{k}") if isinstance(self.nodes, _Dist) else self.nodes
                     for k in range(1, depth + 1))

    def describe(self) -> str | None:
        """``None`` when nothing about the layers is searched."""
        if not self.dists():
            return None
        word = lambda d: d.describe() if isinstance(d, _Dist) else str(d)  # noqa: E731
        if not self.variable:
            return f"hidden [{', '.join(word(d) for d in self.layers)}]"
        return f"hidden layers {word(self.depth)} × nodes {word(self.nodes)}"


def _parse_layer(path: str, raw, unit: str):
    """A layer width (``unit`` "nodes") or the depth (``unit`` "layers"): an int or an int table."""
    if isinstance(raw, dict):
        dist, _ = _parse_dist(path, raw, f"hidden {unit}", _AT_LEAST_ONE, allow_when=False)
        return dist
    if not _is_int(raw):
        raise SpaceError(path, f"takes an integer or an int, log_int or choice table, got {raw!r}")
    if raw < 1:
        raise SpaceError(path, f"needs >= 1 {unit}, got {raw!r}")
    return raw


def _parse_hidden(raw) -> _Hidden:
    path = "params.hidden"
    if isinstance(raw, list):
        if not raw:
            raise SpaceError(path, "needs at least one hidden layer, got []")
        return _Hidden(layers=tuple(_parse_layer(f"{path}[{i}]", entry, "nodes") for i, entry in enumerate(raw)))
    if isinstance(raw, dict):
        if any(key in DISTRIBUTIONS or key == "when" for key in raw):
            raise SpaceError(path, "takes a list with one entry per layer, or { layers = ..., nodes = ... }; "
                                   f"got a distribution {raw!r}")
        for key in raw:
            if key not in ("layers", "nodes"):
                raise SpaceError(f"{path}.{key}", f"unknown key (expected layers and nodes)"
                                                  f"{did_you_mean(key, ['layers', 'nodes'])}")
        for key in ("layers", "nodes"):
            if key not in raw:
                raise SpaceError(path, f"a variable-depth hidden needs both layers and nodes, {key} is missing")
        return _Hidden(depth=_parse_layer(f"{path}.layers", raw["layers"], "layers"),
                       nodes=_parse_layer(f"{path}.nodes", raw["nodes"], "nodes"))
    raise SpaceError(path, f"takes a list with one entry per layer, or {{ layers = ..., nodes = ... }}; got {raw!r}")


def _check_conditions(params: dict, known: dict[str, _Rule]) -> None:
    for p in params.values():
        for target, values in getattr(p, "when", ()):
            path = f"params.{p.name}.when.{target}"
            if target == p.name:
                raise SpaceError(path, "a parameter cannot depend on itself")
            if target == "hidden":
                raise SpaceError(path, "a condition cannot name hidden")
            if target not in params:
                if target in known:
                    raise SpaceError(path, f"names {target}, which is not set in [params]")
                raise SpaceError(path, f"unknown parameter{did_you_mean(target, params)}")
            other = params[target]
            for value in values:
                problem = known[target].problem(value)
                if problem:
                    raise SpaceError(path, problem)
            if other.dist is not None and other.dist.kind in ("uniform", "log_uniform"):
                raise SpaceError(path, f"a condition needs a parameter with countable values (a constant, "
                                       f"choice, int or log_int), but {target} is {other.dist.kind}")
            if not any(other.can_be(known[target].coerce(v)) for v in values):
                raise SpaceError(path, f"can never hold: {target} {other.possible()}, never {_values_text(values)}")


#: (low, high) parameter pairs the MLP needs strictly ordered
_ORDERED_PAIRS = (("init_low", "init_high"), ("bias_low", "bias_high"))


def _check_pairs(params: dict) -> None:
    """A pair like init_low < init_high must hold for every value either can take (defaults count)."""
    from hpsearch.mlp import MLPConfig

    defaults = {f.name: f.default for f in dataclasses.fields(MLPConfig)}
    for low_name, high_name in _ORDERED_PAIRS:
        if low_name not in params and high_name not in params:
            continue
        ends = {}
        for name, end in ((low_name, "largest"), (high_name, "smallest")):
            p = params.get(name)
            if p is None:
                ends[name] = (defaults[name], "the default")
            elif p.dist is None:
                ends[name] = (p.value, "")
            else:
                ends[name] = (getattr(p.dist, end)(), f"its {end}")
        (low, low_note), (high, high_note) = ends[low_name], ends[high_name]
        if not low < high:
            culprit = low_name if low_name in params else high_name
            note = lambda n: f" ({n})" if n else ""  # noqa: E731
            raise SpaceError(f"params.{culprit}", f"needs {low_name} < {high_name}, got {low_name} = {_num(low)}"
                                                  f"{note(low_note)} and {high_name} = {_num(high)}{note(high_note)}")


def _dependency_order(params: dict) -> list[str]:
    """File order, moved only as far as needed to put each parameter after those it names in ``when``."""
    deps = {name: [t for t, _ in getattr(p, "when", ())] for name, p in params.items()}
    order: list[str] = []
    left = list(params)
    while left:
        ready = next((n for n in left if all(d in order for d in deps[n])), None)
        if ready is None:
            raise SpaceError(f"params.{left[0]}.when", f"conditions form a cycle: {_cycle(left[0], deps, order)}")
        order.append(ready)
        left.remove(ready)
    return order


def _cycle(start: str, deps: dict, placed: list[str]) -> str:
    # every parameter not yet placed waits on another one not placed: walking those must loop
    walk = [start]
    while True:
        nxt = next(d for d in deps[walk[-1]] if d not in placed)
        if nxt in walk:
            return " → ".join(walk[walk.index(nxt):] + [nxt])
        walk.append(nxt)


# --------------------------------------------------------------------------- TOML writing


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        # a JSON string is a TOML basic string, once DEL is escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise HPSearchError(f"cannot write {value!r} to a space file")


def _toml_section(name: str, table: Mapping) -> str:
    width = max((len(_toml_key(k)) for k in table), default=0)
    lines = [f"[{name}]"] + [f"{_toml_key(k):<{width}} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the space


class Space:
    """A validated search space: samples flat config dicts through an Optuna trial.

    Build one with :func:`load_space` or :func:`parse_space`.
    """

    def __init__(self, source: str, text: str, study: StudySettings, params: dict, raw: dict):
        self.source = source
        self.text = text
        self.study = study
        self._params = params  # name -> _Param | _Hidden, file order
        self._raw = raw  # the parsed TOML, for to_toml
        self._order = _dependency_order(params)
        self._dists: dict[str, _Dist] = {}
        for name in self._order:
            p = params[name]
            if isinstance(p, _Hidden):
                self._dists.update(p.dists())
            elif p.dist is not None:
                self._dists[name] = p.dist

    def __repr__(self) -> str:
        return (f"Space({self.study.name!r}, {len(self._dists)} searched, {len(self.constants())} constant, "
                f"from {self.source})")

    # -- sampling

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict:
        """One flat config, e.g. ``{"hidden": (93, 42), "lr": 0.3, "activation": "leaky_relu"}``.

        Depends only on what the trial answers for each parameter name, so a sampler that
        derives values from (seed, trial number, name) gives the same config on any worker.
        Constants are included; a conditional parameter only when its condition holds.
        """
        config: dict = {}
        for name in self._order:
            p = self._params[name]
            if isinstance(p, _Hidden):
                config["hidden"] = p.suggest(trial)
            elif p.holds(config):
                config[name] = p.value if p.dist is None else p.dist.suggest(trial, name)
        return config

    def sample(self, n: int, seed: int) -> list[dict]:
        """``n`` configs from an in-memory study with ``RandomSampler(seed)`` (for ``check --sample``)."""
        with _quiet_optuna():
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            return [self.suggest(study.ask()) for _ in range(n)]

    # -- what the space is

    def param_names(self) -> list[str]:
        """Optuna parameter names in suggestion order (``hidden_1``, ``hidden_2``, ``lr``, ...)."""
        return list(self._dists)

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna parameter name -> its Optuna distribution, in suggestion order."""
        return {name: d.to_optuna() for name, d in self._dists.items()}

    def scale(self, optuna_name: str) -> str:
        """``"log"``, ``"linear"``, ``"int"``, ``"log_int"`` or ``"categorical"``."""
        return self._dist(optuna_name).scale

    def constants(self) -> dict:
        """Values every config gets without asking Optuna, keyed like Optuna parameters.

        A constant hidden layer appears as ``hidden_k`` (a fixed depth as ``n_layers``), so
        ``{**trial.params, **space.constants()}`` has one column per parameter.
        """
        out = {}
        for name, p in self._params.items():
            if isinstance(p, _Hidden):
                out.update(p.constants())
            elif p.dist is None:
                out[name] = p.value
        return out

    def max_value(self, name: str):
        """The largest value parameter ``name`` can take; ``None`` if not set or not numeric."""
        if name in self._dists:
            return self._dists[name].largest()
        p = self._params.get(name)
        if isinstance(p, _Param) and p.dist is None:
            return p.value if _is_number(p.value) else None
        return None

    def flatten(self, config: dict) -> dict:
        """A config as one flat record: ``hidden`` becomes ``n_layers`` (variable depth) and ``hidden_k``."""
        out = {}
        for key, value in config.items():
            if key == "hidden":
                hidden = self._params["hidden"]
                if hidden.variable:
                    out["n_layers"] = len(value)
                out.update({f"hidden_{k}": n for k, n in enumerate(value, 1)})
            else:
                out[key] = value
        return out

    def describe(self) -> str:
        """One line: every searched parameter with its range, constants left out."""
        parts = []
        for p in self._params.values():
            if isinstance(p, _Hidden):
                text = p.describe()
                if text:
                    parts.append(text)
            elif p.dist is not None:
                parts.append(p.describe())
        return " · ".join(parts) if parts else "no searched parameters (every value is constant)"

    def identity(self) -> dict[str, str]:
        """``params.NAME`` → the parameter as written (TOML), for saying how two spaces differ."""
        return {f"params.{k}": _toml_value(v) for k, v in sorted(self._raw.get("params", {}).items())}

    def _dist(self, optuna_name: str) -> _Dist:
        if optuna_name in self._dists:
            return self._dists[optuna_name]
        constants = self.constants()
        if optuna_name in constants or optuna_name in self._params:
            raise HPSearchError(f"{optuna_name} is not a searched parameter of this space")
        raise HPSearchError(f"unknown parameter {optuna_name!r}{did_you_mean(optuna_name, list(self._dists))}")

    # -- writing

    def to_toml(self, **changes) -> str:
        """This space as a space file, with ``changes`` applied; the result parses back.

        Each keyword is a ``[params]`` name or an Optuna name (``hidden_2``; ``n_layers``
        and every ``hidden_k`` of a variable-depth ``hidden`` address its ``layers`` and
        ``nodes``), or ``study``:

        - a tuple gives a distribution new bounds (``lr=(0.01, 0.2)``) or a choice new
          options (``activation=("relu", "tanh")``), keeping its kind, ``step`` and ``when``;
        - ``None`` removes the parameter (back to the MLP default);
        - anything else replaces it as written in TOML (``lr=0.1``, ``lr={"uniform": [0, 1]}``);
        - ``study={"name": "narrowed"}`` updates ``[study]``.

        The study name is always written, since its default (the file's stem) would change.
        Raises :class:`SpaceError` if the result breaks a rule.
        """
        study = {"name": self.study.name, **self._raw.get("study", {})}
        params = {k: _copy(v) for k, v in self._raw.get("params", {}).items()}
        for key, change in changes.items():
            if key == "study":
                if not isinstance(change, Mapping):
                    raise HPSearchError(f"to_toml: study takes a mapping of [study] keys, got {change!r}")
                study.update(change)
            else:
                self._apply(params, key, change)
        text = _toml_section("study", study) + "\n" + _toml_section("params", params)
        parse_space(text)  # a file we write must load
        return text

    def _apply(self, params: dict, key: str, change) -> None:
        hidden = self._params.get("hidden")
        slot: tuple = (params, key)
        if isinstance(hidden, _Hidden) and (key == "n_layers" or re.fullmatch(r"hidden_\d+", key)):
            raw = params["hidden"]
            if hidden.variable:
                slot = (raw, "layers" if key == "n_layers" else "nodes")
            else:
                k = int(key.removeprefix("hidden_"))
                if not 1 <= k <= len(raw):
                    raise HPSearchError(f"to_toml: {key} is not a layer of this space")
                slot = (raw, k - 1)
        elif key not in params and key not in _known_params():
            raise HPSearchError(f"to_toml: unknown parameter {key!r}{did_you_mean(key, list(params))}")
        table, index = slot
        if change is None:
            if table is not params:
                raise HPSearchError(f"to_toml: cannot remove {key}; remove or replace hidden instead")
            params.pop(key, None)
        elif isinstance(change, tuple):
            current = table[index] if table is not params or key in params else None
            kind = next((k for k in DISTRIBUTIONS if isinstance(current, dict) and k in current), None)
            if kind is None:
                raise HPSearchError(f"to_toml: {key} is not a distribution; pass a value or a table, not {change!r}")
            current[kind] = list(change)
        else:
            table[index] = change


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@contextlib.contextmanager
def _quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


# --------------------------------------------------------------------------- entry points


def parse_space(text: str, source: str = _UNNAMED) -> Space:
    """Parse and validate a space file's text; errors name ``source`` unless it is ``"<string>"``."""
    try:
        return _parse(text, source)
    except HPSearchError as err:
        if source != _UNNAMED:
            err.args = (f"{source}: {err}",)  # .path and .message stay the bare key path and rule
        raise


def load_space(path) -> Space:
    """Read and validate a space file; every error message starts with the path."""
    path_text = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise HPSearchError(f"{path_text}: no such file") from None
    except IsADirectoryError:
        raise HPSearchError(f"{path_text}: is a directory, not a space file") from None
    except OSError as err:
        raise HPSearchError(f"{path_text}: cannot read: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HPSearchError(f"{path_text}: not UTF-8 text (byte {err.start})") from None
    return parse_space(text, path_text)


def _parse(text: str, source: str) -> Space:
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as err:
        raise SpaceError("", f"malformed TOML: {err}") from None
    for key in data:
        if key not in _SECTIONS:
            raise SpaceError(key, f"unknown section (expected [study] and [params]){did_you_mean(key, _SECTIONS)}")
    default_name = safe_name(Path(source).stem) if source != _UNNAMED else "study"
    study = _parse_study(data.get("study", {}), default_name)
    table = data.get("params", {})
    if not isinstance(table, dict):
        raise SpaceError("params", f"must be a table ([params]), got {table!r}")
    known = _known_params()
    params: dict = {}
    for name, raw in table.items():
        if name == "hidden":
            params[name] = _parse_hidden(raw)
        elif name not in known:
            raise SpaceError(f"params.{name}", f"unknown parameter{did_you_mean(name, known)}")
        else:
            params[name] = _parse_param(name, raw, known[name])
    _check_conditions(params, known)
    _check_pairs(params)
    return Space(source, text, study, params, data)
