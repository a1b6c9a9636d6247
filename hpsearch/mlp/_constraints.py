"""Constraints on one MLP parameter: small objects that check a value and describe themselves.

As scikit-learn's ``utils/_param_validation.py``: a constraint knows what it accepts,
so the error message writes itself (``"must be in [0, 1), got 1.0"``). The table of
them is :data:`hpsearch.mlp.CONSTRAINTS` (one per ``MLPConfig`` field); the search-space
DSL reads it rather than keeping rules of its own.

Every constraint has ``kind`` (``"int"``, ``"float"``, ``"bool"`` or ``"name"``),
``describe()`` (what it accepts, in words), ``problem(value, label="")`` (``None`` if
``value`` fits, else ``"must be ..., got <label><value>"``), ``check(name, value)``
(raises :class:`~hpsearch.errors.HPSearchError` naming the parameter) and
``coerce(value)`` (the value as the config stores it).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping

import numpy as np

from hpsearch._registry import lookup
from hpsearch.errors import HPSearchError


def number_text(x) -> str:
    """A number as a person writes it: 0.005, 1e-05, 10 (not 10.0)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


def bounds_text(low, high, low_open: bool, high_open: bool) -> str:
    """``"in [0, 1)"``, ``"> 0"``, ``">= 1"``, ... or ``""`` without bounds."""
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"in {left}{number_text(low)}, {number_text(high)}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {number_text(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {number_text(high)}"
    return ""


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


class Constraint:
    kind = ""

    def describe(self) -> str:
        raise NotImplementedError

    def problem(self, value, label: str = "") -> str | None:
        raise NotImplementedError

    def check(self, name: str, value) -> None:
        """Raise ``HPSearchError("MLP parameter 'name' must be ..., got ...")`` unless ``value`` fits."""
        problem = self.problem(value)
        if problem is not None:
            raise HPSearchError(f"MLP parameter {name!r} {problem}")

    def coerce(self, value):
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class Interval(Constraint):
    """A number of ``kind`` ``"int"`` or ``"float"`` (finite), optionally within bounds;
    ``low_open`` / ``high_open`` exclude the bound itself."""

    def __init__(self, kind: str, low=None, high=None, *, low_open: bool = False, high_open: bool = True):
        if kind not in ("int", "float"):
            raise ValueError(f"kind must be 'int' or 'float', got {kind!r}")
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open = low_open, high_open

    def bounds(self) -> str:
        """``"in [0, 1)"``, ``"> 0"``, ``">= 1"``, ... or ``""`` without bounds."""
        return bounds_text(self.low, self.high, self.low_open, self.high_open)

    def describe(self) -> str:
        what = "an integer" if self.kind == "int" else "a finite number"
        return f"{what} {self.bounds()}".rstrip()

    def problem(self, value, label: str = "") -> str | None:
        got = f"got {label}{value!r}"
        if self.kind == "int" and not is_int(value):
            return f"must be an integer, {got}"
        if self.kind == "float":
            if not is_number(value):
                return f"must be a number, {got}"
            if not math.isfinite(value):
                return f"must be a finite number, {got}"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self.bounds()}, {got}" if too_low or too_high else None

    def coerce(self, value):
        return int(value) if self.kind == "int" else float(value)


class Flag(Constraint):
    """True or false (the config also takes 0 and 1)."""

    kind = "bool"

    def describe(self) -> str:
        return "true or false"

    def problem(self, value, label: str = "") -> str | None:
        if isinstance(value, (bool, np.bool_)) or (is_int(value) and value in (0, 1)):
            return None
        return f"must be true or false, got {label}{value!r}"

    def coerce(self, value):
        return bool(value)


class Name(Constraint):
    """A key of a registry (``names()`` returns them sorted): an unknown one lists the
    allowed names and the closest match. ``registry`` is a mapping, or a callable
    returning one (looked up when first needed)."""

    kind = "name"

    def __init__(self, family: str, registry: Mapping | Callable[[], Mapping]):
        self.family = family
        self._registry = registry

    def registry(self) -> Mapping:
        found = self._registry() if callable(self._registry) else self._registry
        return found if isinstance(found, Mapping) else dict.fromkeys(found)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.registry()))

    def describe(self) -> str:
        return f"one of {', '.join(self.names())}"

    def problem(self, value, label: str = "") -> str | None:
        try:
            lookup(self.registry(), value, self.family)
        except HPSearchError as err:
            return str(err)
        return None

    def check(self, name: str, value) -> None:
        problem = self.problem(value)
        if problem is not None:  # the registry's own wording: "unknown activation 'x' (allowed: ...)"
            raise HPSearchError(problem)


class Choice(Name):
    """One of a few fixed words: ``"must be one of a, b, got 'c'"``."""

    def problem(self, value, label: str = "") -> str | None:
        if isinstance(value, str) and value in self.registry():
            return None
        return f"must be {self.describe()}, got {label}{value!r}"

    def check(self, name: str, value) -> None:
        Constraint.check(self, name, value)
