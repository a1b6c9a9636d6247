"""``MLPConfig``: every knob of one training run, validated when it is built."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hpsearch._registry import did_you_mean
from hpsearch.errors import HPSearchError
from hpsearch.mlp._activations import ACTIVATIONS
from hpsearch.mlp._constraints import Choice, Constraint, Flag, Interval, Name
from hpsearch.mlp._initializers import BIAS_INITIALIZERS, INITIALIZERS
from hpsearch.mlp._losses import LOSSES
from hpsearch.mlp._optimizers import OPTIMIZERS

DTYPES = ("float32", "float64")


# What every field accepts: the one source of these rules (the search-space DSL reads it).
# ``hidden`` is a list; its constraint applies to each layer's width.
_FRACTION = dict(low=0, high=1)  # [0, 1)
CONSTRAINTS: Mapping[str, Constraint] = MappingProxyType(
    {
        "hidden": Interval("int", low=1),
        "activation": Name("activation", ACTIVATIONS),
        "alpha": Interval("float", low=0),
        "loss": Name("loss", LOSSES),
        "weight_init": Name("weight initializer", INITIALIZERS),
        "init_mean": Interval("float"),
        "init_std": Interval("float", low=0),
        "init_low": Interval("float"),
        "init_high": Interval("float"),
        "bias_init": Name("bias initializer", BIAS_INITIALIZERS),
        "bias_mean": Interval("float"),
        "bias_std": Interval("float", low=0),
        "bias_low": Interval("float"),
        "bias_high": Interval("float"),
        "optimizer": Name("optimizer", OPTIMIZERS),
        "lr": Interval("float", low=0, low_open=True),
        "momentum": Interval("float", **_FRACTION),
        "rho": Interval("float", **_FRACTION),
        "beta1": Interval("float", **_FRACTION),
        "beta2": Interval("float", **_FRACTION),
        "eps": Interval("float", low=0, low_open=True),
        "weight_decay": Interval("float", low=0),
        "dropout": Interval("float", **_FRACTION),
        "batch_norm": Flag(),
        "bn_momentum": Interval("float", **_FRACTION),
        "batch_size": Interval("int", low=1),
        "epochs": Interval("int", low=1),
        "patience": Interval("int", low=0),
        "dtype": Choice("dtype", dict.fromkeys(DTYPES)),
        "seed": Interval("int", low=0),
    }
)
#: (low, high) pairs of fields that must hold low < high
ORDERED_PAIRS = (("init_low", "init_high"), ("bias_low", "bias_high"))
#: fields that change training only when another field has one of some values (the rest of the time they are unused)
USED_WHEN: Mapping[str, tuple[str, tuple]] = MappingProxyType(
    {
        "alpha": ("activation", ("leaky_relu",)),
        "init_mean": ("weight_init", ("normal",)),
        "init_std": ("weight_init", ("normal",)),
        "init_low": ("weight_init", ("uniform",)),
        "init_high": ("weight_init", ("uniform",)),
        "bias_mean": ("bias_init", ("normal",)),
        "bias_std": ("bias_init", ("normal",)),
        "bias_low": ("bias_init", ("uniform",)),
        "bias_high": ("bias_init", ("uniform",)),
        "momentum": ("optimizer", ("momentum",)),
        "rho": ("optimizer", ("rmsprop",)),
        "beta1": ("optimizer", ("adam",)),
        "beta2": ("optimizer", ("adam",)),
        "eps": ("optimizer", ("adagrad", "rmsprop", "adam")),
        "bn_momentum": ("batch_norm", (True,)),
    }
)


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
    patience: int = 0  # stop after this many epochs without a better validation metric (0: never)
    dtype: str = "float32"  # or "float64"
    seed: int = 0

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)  # frozen: normalize types once, here
        hidden = self.hidden
        if isinstance(hidden, numbers.Integral) or isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise HPSearchError(f"MLP parameter 'hidden' must be a list of layer widths, got {hidden!r}")
        hidden = tuple(hidden)
        if not hidden:
            raise HPSearchError("MLP parameter 'hidden' must have at least one layer, got ()")
        width_rule = CONSTRAINTS["hidden"]
        for i, width in enumerate(hidden):
            width_rule.check(f"hidden[{i}]", width)
        set_("hidden", tuple(width_rule.coerce(w) for w in hidden))

        for name, rule in CONSTRAINTS.items():
            if name != "hidden":
                value = getattr(self, name)
                rule.check(name, value)
                set_(name, rule.coerce(value))

        for low, high in ORDERED_PAIRS:
            if getattr(self, low) >= getattr(self, high):
                raise HPSearchError(
                    f"MLP parameters {low!r} < {high!r} required, "
                    f"got {low}={getattr(self, low)!r}, {high}={getattr(self, high)!r}"
                )

    @classmethod
    def constraints(cls) -> Mapping[str, Constraint]:
        """What each field accepts (``hpsearch.mlp.CONSTRAINTS``): field -> constraint with
        ``kind``, ``describe()``, ``problem(value)``, ``check(name, value)``, ``coerce(value)``
        (and ``names()`` for the ``name`` kind). ``hidden``'s applies to each layer's width."""
        return CONSTRAINTS

    @classmethod
    def from_dict(cls, d: Mapping) -> MLPConfig:
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

    def replace(self, **changes) -> MLPConfig:
        return dataclasses.replace(self, **changes)
