"""The validated :class:`Space` and the entry points that make one."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import optuna

from hpsearch._registry import did_you_mean
from hpsearch.errors import HPSearchError, SpaceError
from hpsearch.space._dists import _Dist
from hpsearch.space._params import (
    _check_conditions,
    _check_pairs,
    _dependency_order,
    _Hidden,
    _Param,
    _parse_hidden,
    _parse_param,
)
from hpsearch.space._rules import DISTRIBUTIONS, _is_number, _known_params, _same, _word, suggest
from hpsearch.space._settings import StudySettings, _parse_study
from hpsearch.space._toml import _toml_section, _toml_value
from hpsearch.vocabulary import safe_name

_SECTIONS = ("study", "params")
_UNNAMED = "<string>"


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
        return (
            f"Space({self.study.name!r}, {len(self._dists)} searched, {len(self.constants())} constant, "
            f"from {self.source})"
        )

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

    def warnings(self) -> list[str]:
        """Parameters written in the file that can never change training (``alpha`` with ``relu`` only)."""
        from hpsearch.data import NORMALIZERS
        from hpsearch.mlp import USED_WHEN, MLPConfig
        from hpsearch.vocabulary import DATA_DEFAULTS

        used_when = {**USED_WHEN, "norm_axis": ("normalizer", tuple(n for n in NORMALIZERS if n != "none"))}
        defaults = {f.name: f.default for f in dataclasses.fields(MLPConfig)} | DATA_DEFAULTS
        out = []
        for name, p in self._params.items():
            if name not in used_when or not isinstance(p, _Param):
                continue
            control, values = used_when[name]
            if any(target == control for target, _ in p.when):
                continue  # conditional on it already: suggested only where it matters
            c = self._params.get(control)
            if c is None:
                possible = (defaults.get(control),)
            elif c.dist is None:
                possible = (c.value,)
            elif c.dist.kind == "choice":
                possible = c.dist.options
            else:
                continue
            if not any(_same(v, u) for v in possible for u in values):
                now = _word(possible[0]) if len(possible) == 1 else " or ".join(_word(v) for v in possible)
                need = " or ".join(_word(v) for v in values)
                out.append(
                    f"params.{name}: has no effect: it is used only when {control} = {need}, "
                    f"and here {control} is only ever {now}"
                )
        return out

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
            raise SpaceError(f"params.{name}", f"unknown parameter{suggest(name, [*known, 'hidden'])}")
        else:
            params[name] = _parse_param(name, raw, known[name])
    _check_conditions(params, known)
    _check_pairs(params)
    return Space(source, text, study, params, data)
