"""hpsearch: hyperparameter search for from-scratch NumPy MLPs, as a library and a command line.

    import hpsearch
    study = hpsearch.run("search_spaces/leaky_relu.toml", trials=100, jobs=2)   # or hpsearch.open("results/NAME")
    study.best(10)                       # DataFrames: trials, curves, best, worst, failed
    print(study.regions())               # where training fails, as an object
    study.plot("lr")                     # a matplotlib Figure
    model = study.model()                # the best trial's trained model (any trial: study.model(number))
    model.predict(x_raw)                 # raw inputs: the fitted normalizer is part of the model
    model.save("best.npz"); hpsearch.load_model("best.npz")

``hpsearch.mlp`` is the NumPy MLP on its own (``train(config, x, y, x_val, y_val)``);
``hpsearch.data`` the data sets and normalizers; every error is an
:class:`HPSearchError` (a ``ValueError``). ``python -m hpsearch`` is the same calls
as commands.
"""

__version__ = "0.1.0"

from hpsearch._api import Narrowed, Regions, Study, load_model, open, run  # noqa: E402
from hpsearch.errors import (  # noqa: E402
    DataError,
    HPSearchError,
    Interrupted,
    ResultsError,
    SpaceError,
    StorageError,
)
from hpsearch.model import Model  # noqa: E402


def read_trials(results_dir):
    """A study's trials.csv as a DataFrame with each column's real type: counts and widths ``Int64``
    (17, not 17.0; missing is ``<NA>``), text ``string``, measurements ``float``. See README, "Results"."""
    from hpsearch.results.reader import read_trials as read

    return read(results_dir)


__all__ = [
    "DataError",
    "HPSearchError",
    "Interrupted",
    "Model",
    "Narrowed",
    "Regions",
    "ResultsError",
    "SpaceError",
    "StorageError",
    "Study",
    "__version__",
    "load_model",
    "open",
    "read_trials",
    "run",
]
