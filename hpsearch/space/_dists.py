"""Distributions of ``[params]``: uniform, log_uniform, int, log_int, choice, and their ``when`` conditions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna

from hpsearch._registry import did_you_mean
from hpsearch.errors import SpaceError
from hpsearch.space._rules import _SCALES, DISTRIBUTIONS, _is_int, _is_number, _is_scalar, _num, _Rule, _same, _word
from hpsearch.vocabulary import clip


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
        raise SpaceError(
            path, f"{name} takes {'true or false' if rule.kind == 'bool' else 'a name'}; use choice = [...], not {kind}"
        )
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
            raise SpaceError(
                f"{path}.step", f"step {step} does not divide high - low = {high - low} (int = {bounds!r})"
            )
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
                raise SpaceError(
                    f"{path}.{target}", f"a condition value must be a string, number or boolean, got {value!r}"
                )
        out.append((target, tuple(values)))
    return tuple(out)
