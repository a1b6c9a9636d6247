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

from hpsearch.space._rules import DATA_PARAMS, DISTRIBUTIONS
from hpsearch.space._settings import StudySettings, with_overrides
from hpsearch.space._space import Space, load_space, parse_space
from hpsearch.vocabulary import METRICS, PRUNERS, SAMPLERS

__all__ = [
    "DATA_PARAMS",
    "DISTRIBUTIONS",
    "METRICS",
    "PRUNERS",
    "SAMPLERS",
    "Space",
    "StudySettings",
    "with_overrides",
    "load_space",
    "parse_space",
]
