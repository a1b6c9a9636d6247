"""What one value may be: small predicates, and the rules that check a value and describe themselves."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hpsearch._registry import did_you_mean, lookup
from hpsearch.errors import HPSearchError
from hpsearch.mlp._constraints import bounds_text
from hpsearch.mlp._constraints import number_text as _num
from hpsearch.vocabulary import DATA_KEYS

DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
#: parameters of the data pipeline rather than of the MLP
DATA_PARAMS = DATA_KEYS
_SCALES = {"uniform": "linear", "log_uniform": "log", "int": "int", "log_int": "log_int", "choice": "categorical"}


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


def _word(value) -> str:
    """A value in running text (describe): strings bare, booleans as in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _num(value) if _is_number(value) else str(value)


def _values_text(values) -> str:
    return " or ".join(repr(v) for v in values)


@dataclass(frozen=True)
class _Rule:
    """What one parameter accepts; checks a value and describes itself in the error.

    ``kind`` is ``float``, ``int``, ``bool`` or ``name`` (a key of ``registry()``).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = True
    family: str = ""
    registry: Callable[[], Mapping] | None = None

    def bounds(self) -> str:
        return bounds_text(self.low, self.high, self.low_open, self.high_open)

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
    return _Rule(
        constraint.kind,
        low=constraint.low,
        high=constraint.high,
        low_open=constraint.low_open,
        high_open=constraint.high_open,
    )


@functools.cache
def _known_params() -> dict[str, _Rule]:
    """Every name ``[params]`` accepts: the fields of ``MLPConfig`` (each with the rule of
    its constraint; ``hidden``'s is per layer) plus the data parameters."""
    from hpsearch.mlp import MLPConfig

    known = {name: _from_constraint(c) for name, c in MLPConfig.constraints().items()}
    for name in DATA_PARAMS:
        known[name] = _RULES[name]
    return known


# What people coming from other code write for hpsearch's names: suggested by meaning, not by spelling.
MEANINGS = {
    "lr": ("learning_rate", "learningrate", "eta", "step_size", "stepsize", "alpha_lr"),
    "batch_size": ("batch", "batchsize", "minibatch", "mini_batch", "mini_batch_size", "minibatch_size"),
    "hidden": (
        "nodes",
        "units",
        "neurons",
        "hidden_units",
        "hidden_size",
        "hidden_sizes",
        "hidden_layer_sizes",
        "hidden_size_list",
        "layers",
        "num_layers",
        "n_layers",
        "hidden_layers",
        "architecture",
    ),
    "alpha": ("activation_alpha", "negative_slope", "leak", "leaky_alpha", "leaky_slope", "slope"),
    "weight_decay": ("l2", "l2_reg", "lambda", "weight_decay_lambda", "decay", "regularization", "reg"),
    "dropout": ("dropout_ratio", "dropout_rate", "use_dropout", "drop_rate"),
    "batch_norm": ("batchnorm", "use_batchnorm", "batch_normalization", "bn"),
    "weight_init": ("init", "initializer", "initialization", "weight_initializer", "kernel_initializer"),
    "init_std": ("weight_init_std", "std", "init_scale"),
    "normalizer": ("normalize", "normalization", "scaler", "scaling", "preprocessing"),
    "optimizer": ("solver", "optim", "optimiser", "update_rule"),
    "momentum": ("mu", "beta"),
    "activation": ("activation_function", "act", "act_fn", "nonlinearity"),
    "epochs": ("epoch", "max_epochs", "n_epochs", "num_epochs", "max_iter", "iters_num"),
    "loss": ("loss_function", "criterion", "cost"),
    "trials": ("n_trials", "num_trials", "runs", "n_runs"),
    "seed": ("random_state", "random_seed", "rng_seed"),
}
_MEANING = {alias: name for name, aliases in MEANINGS.items() for alias in aliases}


def suggest(name: str, known) -> str:
    """``"; did you mean 'lr'?"``: by meaning (``learning_rate``), by case (``LR``), else by spelling."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    target = _MEANING.get(key)
    if target is not None and target in known:
        return f"; did you mean {target!r}?"
    if key in known and key != name:
        return f"; did you mean {key!r}? (names are lower case)"
    return did_you_mean(name, known)
