"""``MLPConfig``: every knob of one training run, validated when it is built."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from hpsearch._registry import did_you_mean, lookup
from hpsearch.errors import HPSearchError
from hpsearch.mlp._activations import ACTIVATIONS
from hpsearch.mlp._initializers import BIAS_INITIALIZERS, INITIALIZERS
from hpsearch.mlp._losses import LOSSES
from hpsearch.mlp._optimizers import OPTIMIZERS

DTYPES = ("float32", "float64")


class _Rule:
    """A range rule that checks a number and describes itself for the error message."""

    def __init__(self, text: str, test):
        self.text = text
        self.test = test

    def check(self, name: str, value) -> None:
        if not self.test(value):
            raise HPSearchError(f"MLP parameter {name!r} must be {self.text}, got {value!r}")


def _gt(lo):
    return _Rule(f"> {lo}", lambda v: v > lo)


def _ge(lo):
    return _Rule(f">= {lo}", lambda v: v >= lo)


def _in_unit(lo_closed: bool = True):
    return _Rule("in [0, 1)" if lo_closed else "in (0, 1)",
                 (lambda v: 0 <= v < 1) if lo_closed else (lambda v: 0 < v < 1))


_FINITE = _Rule("a finite number", math.isfinite)

# (field, registry, family) for every name a user writes
_REGISTRY_FIELDS = (
    ("activation", ACTIVATIONS, "activation"),
    ("loss", LOSSES, "loss"),
    ("weight_init", INITIALIZERS, "weight initializer"),
    ("bias_init", BIAS_INITIALIZERS, "bias initializer"),
    ("optimizer", OPTIMIZERS, "optimizer"),
)

_INT_FIELDS = {"batch_size": _ge(1), "epochs": _ge(1), "seed": _ge(0)}

_FLOAT_FIELDS = {
    "alpha": _ge(0),
    "init_mean": None,
    "init_std": _ge(0),
    "init_low": None,
    "init_high": None,
    "bias_mean": None,
    "bias_std": _ge(0),
    "bias_low": None,
    "bias_high": None,
    "lr": _gt(0),
    "momentum": _in_unit(),
    "rho": _in_unit(),
    "beta1": _in_unit(),
    "beta2": _in_unit(),
    "eps": _gt(0),
    "weight_decay": _ge(0),
    "dropout": _in_unit(),
    "bn_momentum": _in_unit(),
}


@dataclass(frozen=True)
class MLPConfig:
    """One MLP training run. Names in ``activation``, ``loss``, ``weight_init``,
    ``bias_init`` and ``optimizer`` are the keys of the registries in ``hpsearch.mlp``.
    """

    hidden: tuple[int, ...] = (100, 50)
    activation: str = "relu"  # sigmoid tanh relu leaky_relu identity softplus softsign step
    alpha: float = 0.01  # leaky_relu negative slope
    loss: str = "cross_entropy"  # cross_entropy (softmax output) | mean_squared_error (identity output)
    weight_init: str = "he_normal"
    init_mean: float = 0.0  # weight_init = normal
    init_std: float = 0.01
    init_low: float = -0.05  # weight_init = uniform
    init_high: float = 0.05
    bias_init: str = "zeros"  # zeros ones normal uniform
    bias_mean: float = 0.0
    bias_std: float = 0.01
    bias_low: float = -0.05
    bias_high: float = 0.05
    optimizer: str = "sgd"  # sgd momentum adagrad rmsprop adam
    lr: float = 0.01
    momentum: float = 0.9  # momentum
    rho: float = 0.99  # rmsprop decay
    beta1: float = 0.9  # adam
    beta2: float = 0.999
    eps: float = 1e-8  # adagrad / rmsprop / adam
    weight_decay: float = 0.0  # L2 on weights (not biases), added to the gradient
    dropout: float = 0.0  # ratio dropped in hidden layers (inverted dropout, training only)
    batch_norm: bool = False  # after each hidden affine, before the activation
    bn_momentum: float = 0.9
    batch_size: int = 100
    epochs: int = 10
    dtype: str = "float32"  # or "float64"
    seed: int = 0

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)  # frozen: normalize types once, here
        hidden = self.hidden
        if isinstance(hidden, numbers.Integral) or isinstance(hidden, (str, bytes)) \
                or not hasattr(hidden, "__iter__"):
            raise HPSearchError(f"MLP parameter 'hidden' must be a list of layer widths, got {hidden!r}")
        hidden = tuple(hidden)
        if not hidden:
            raise HPSearchError("MLP parameter 'hidden' must have at least one layer, got ()")
        for i, width in enumerate(hidden):
            if not _is_int(width):
                raise HPSearchError(f"MLP parameter 'hidden[{i}]' must be an integer, got {width!r}")
            if width < 1:
                raise HPSearchError(f"MLP parameter 'hidden[{i}]' must be >= 1, got {width!r}")
        set_("hidden", tuple(int(w) for w in hidden))

        for name, registry, family in _REGISTRY_FIELDS:
            lookup(registry, getattr(self, name), family)

        for name, rule in _INT_FIELDS.items():
            value = getattr(self, name)
            if not _is_int(value):
                raise HPSearchError(f"MLP parameter {name!r} must be an integer, got {value!r}")
            rule.check(name, value)
            set_(name, int(value))

        for name, rule in _FLOAT_FIELDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise HPSearchError(f"MLP parameter {name!r} must be a number, got {value!r}")
            _FINITE.check(name, value)
            if rule is not None:
                rule.check(name, value)
            set_(name, float(value))

        if self.init_low >= self.init_high:
            raise HPSearchError("MLP parameters 'init_low' < 'init_high' required, "
                                f"got init_low={self.init_low!r}, init_high={self.init_high!r}")
        if self.bias_low >= self.bias_high:
            raise HPSearchError("MLP parameters 'bias_low' < 'bias_high' required, "
                                f"got bias_low={self.bias_low!r}, bias_high={self.bias_high!r}")
        if not isinstance(self.batch_norm, (bool, numbers.Integral)) or self.batch_norm not in (0, 1):
            raise HPSearchError(f"MLP parameter 'batch_norm' must be true or false, got {self.batch_norm!r}")
        set_("batch_norm", bool(self.batch_norm))
        if self.dtype not in DTYPES:
            raise HPSearchError(f"MLP parameter 'dtype' must be one of {', '.join(DTYPES)}, "
                                f"got {self.dtype!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "MLPConfig":
        """Build from a plain mapping (a trial's parameters); unknown keys are errors."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in sorted(d, key=str):
            if key not in known:
                raise HPSearchError(f"unknown MLP parameter {key!r}{did_you_mean(key, known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        """Plain values (``hidden`` as a list), the inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def replace(self, **changes) -> "MLPConfig":
        return dataclasses.replace(self, **changes)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
