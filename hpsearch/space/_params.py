"""Parameters of ``[params]``: constants, distributions, the ``hidden`` layers, and how they depend on each other."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hpsearch._registry import did_you_mean
from hpsearch.errors import SpaceError
from hpsearch.mlp import ORDERED_PAIRS
from hpsearch.space._dists import _Dist, _parse_dist, _parse_when
from hpsearch.space._rules import _AT_LEAST_ONE, DISTRIBUTIONS, _is_int, _num, _Rule, _same, _values_text, _word


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
        return all(target in config and any(_same(config[target], v) for v in values) for target, values in self.when)

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
        raise SpaceError(
            path, f"a list is not a value for {name}; a choice is written {{ choice = [...] }}, got {raw!r}"
        )
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
            return tuple(
                d.suggest(trial, f"hidden_{k}") if isinstance(d, _Dist) else d for k, d in enumerate(self.layers, 1)
            )
        depth = self.depth.suggest(trial, "n_layers") if isinstance(self.depth, _Dist) else self.depth
        return tuple(
            self.nodes.suggest(trial, f"hidden_{k}") if isinstance(self.nodes, _Dist) else self.nodes
            for k in range(1, depth + 1)
        )

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
            raise SpaceError(
                path,
                "takes a list with one entry per layer, or { layers = ..., nodes = ... }; "
                f"got a distribution {raw!r}",
            )
        for key in raw:
            if key not in ("layers", "nodes"):
                raise SpaceError(
                    f"{path}.{key}", f"unknown key (expected layers and nodes){did_you_mean(key, ['layers', 'nodes'])}"
                )
        for key in ("layers", "nodes"):
            if key not in raw:
                raise SpaceError(path, f"a variable-depth hidden needs both layers and nodes, {key} is missing")
        return _Hidden(
            depth=_parse_layer(f"{path}.layers", raw["layers"], "layers"),
            nodes=_parse_layer(f"{path}.nodes", raw["nodes"], "nodes"),
        )
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
                raise SpaceError(
                    path,
                    f"a condition needs a parameter with countable values (a constant, "
                    f"choice, int or log_int), but {target} is {other.dist.kind}",
                )
            if not any(other.can_be(known[target].coerce(v)) for v in values):
                raise SpaceError(path, f"can never hold: {target} {other.possible()}, never {_values_text(values)}")


#: (low, high) parameter pairs the MLP needs strictly ordered


def _check_pairs(params: dict) -> None:
    """A pair like init_low < init_high must hold for every value either can take (defaults count)."""
    from hpsearch.mlp import MLPConfig

    defaults = {f.name: f.default for f in dataclasses.fields(MLPConfig)}
    for low_name, high_name in ORDERED_PAIRS:  # the MLP config says which fields are (low, high) pairs
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
            raise SpaceError(
                f"params.{culprit}",
                f"needs {low_name} < {high_name}, got {low_name} = {_num(low)}"
                f"{note(low_note)} and {high_name} = {_num(high)}{note(high_note)}",
            )


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
            return " → ".join(walk[walk.index(nxt) :] + [nxt])
        walk.append(nxt)
