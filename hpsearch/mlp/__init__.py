"""The NumPy MLP core: a config, a training loop that reports divergence, a gradient check.

Knows nothing about Optuna, TOML or files: ``train(config, arrays)`` returns a
:class:`History` or raises :class:`hpsearch.errors.Diverged`. Every name a user
writes is a key of one of the registries below. ``CONSTRAINTS`` (also
``MLPConfig.constraints()``) says what each config field accepts, and
``ORDERED_PAIRS`` which fields must hold ``low < high``: the search-space DSL
validates against them.
"""

from hpsearch.mlp._activations import ACTIVATIONS
from hpsearch.mlp._config import CONSTRAINTS, DTYPES, ORDERED_PAIRS, USED_WHEN, MLPConfig
from hpsearch.mlp._edge import EdgeEstimate, lr_edge
from hpsearch.mlp._gradcheck import gradient_check
from hpsearch.mlp._initializers import BIAS_INITIALIZERS, INITIALIZERS
from hpsearch.mlp._losses import LOSSES
from hpsearch.mlp._network import MLP
from hpsearch.mlp._optimizers import OPTIMIZERS
from hpsearch.mlp._replay import TRACE_COLUMNS
from hpsearch.mlp._sharpness import Sharpness, sharpness, stability_limit
from hpsearch.mlp._train import History, train

__all__ = [
    "ACTIVATIONS",
    "BIAS_INITIALIZERS",
    "CONSTRAINTS",
    "DTYPES",
    "EdgeEstimate",
    "History",
    "INITIALIZERS",
    "LOSSES",
    "MLP",
    "MLPConfig",
    "OPTIMIZERS",
    "ORDERED_PAIRS",
    "USED_WHEN",
    "Sharpness",
    "TRACE_COLUMNS",
    "gradient_check",
    "lr_edge",
    "sharpness",
    "stability_limit",
    "train",
]
