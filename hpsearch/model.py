"""A trained model you can keep: the network, the normalizer it was trained behind, the class labels.

:class:`Model` takes **raw** inputs (the rows of the data set as loaded, before any
scaling): the normalizer fitted on the trial's training part is part of the model.
``save`` writes one ``.npz`` file that ``load_model`` reads back with NumPy alone
(no Optuna, no results directory, no data set).

The file (``np.load(path)`` shows every array; nothing is pickled):

=====================  ==========================================================
``format``             ``"hpsearch-model"``; ``format_version``: 1
``hpsearch_version``   the version that wrote it
``config``             JSON: the MLP configuration (``MLPConfig.to_dict``) plus
                       ``normalizer`` and ``norm_axis``
``sizes``              layer sizes, input to output (``[64, 93, 42, 10]``)
``W_1 .. W_L``         weights, shape (fan_in, fan_out); ``b_1 .. b_L`` biases
``gamma_i, beta_i``    batch-norm scale and shift of hidden layer i (with batch_norm);
``mean_i, var_i``      its running statistics
``norm_shift``,        the normalizer: a raw input x becomes (x - shift) / scale,
``norm_scale``         shape () (global) or (d,) (per feature); ``norm_constant``
                       counts the constant inputs
``classes``            the original class labels, as strings; output k is classes[k]
``info``               JSON: where it came from (study, trial, metric, value,
                       best epoch, training seed, data set)
=====================  ==========================================================
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from hpsearch.errors import DataError, HPSearchError

FORMAT = "hpsearch-model"
FORMAT_VERSION = 1


class Model:
    """A trained MLP behind its fitted normalizer; ``predict`` and friends take raw inputs."""

    def __init__(self, network, normalizer, classes=(), info: dict | None = None):
        self.network = network  # hpsearch.mlp.MLP
        self.normalizer = normalizer  # hpsearch.data.Normalizer
        self.classes = tuple(str(c) for c in classes) or tuple(str(k) for k in range(network.sizes[-1]))
        if len(self.classes) != network.sizes[-1]:
            raise HPSearchError(f"classes: {len(self.classes)} labels for {network.sizes[-1]} outputs")
        self.info = dict(info or {})

    # -- what it is --------------------------------------------------------------------
    @property
    def config(self):
        """The :class:`hpsearch.mlp.MLPConfig` it was trained with."""
        return self.network.config

    @property
    def n_features(self) -> int:
        return self.network.sizes[0]

    def __repr__(self) -> str:
        where = ""
        if "trial" in self.info:
            value = self.info.get("value")
            score = f", {self.info.get('metric', 'value')} {value:.4f}" if isinstance(value, float) else ""
            where = f" · trial {self.info['trial']} of {self.info.get('study', '?')}{score}"
        return f"Model({self.network!r} · {self.normalizer!r}{where})"

    # -- inference on raw inputs ---------------------------------------------------------
    def _scaled(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 1:  # one example
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DataError(f"x must have shape (n, {self.n_features}) (raw inputs, as loaded), got {x.shape}")
        return self.normalizer(x)

    def predict(self, x) -> np.ndarray:
        """Class indices 0..K-1, shape (n,); ``model.classes[k]`` is the original label."""
        return self.network.predict(self._scaled(x))

    def predict_label(self, x) -> np.ndarray:
        """The original class labels (strings), shape (n,)."""
        return np.asarray(self.classes)[self.predict(x)]

    def predict_proba(self, x) -> np.ndarray:
        """Softmax probabilities (cross-entropy models) or raw outputs (MSE), shape (n, K)."""
        return self.network.predict_proba(self._scaled(x))

    def evaluate(self, x, y) -> dict:
        """``{"loss": …, "accuracy": …}`` over raw inputs ``x`` and class indices ``y``."""
        y = np.asarray(y)
        if y.shape != (len(np.atleast_2d(x)),):
            raise DataError(f"y must have shape ({len(np.atleast_2d(x))},) to match x, got {y.shape}")
        return {k: float(v) for k, v in self.network.evaluate(self._scaled(x), y).items()}

    # -- files ---------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Everything :meth:`save` writes, as named arrays (the documented file format)."""
        from hpsearch import __version__

        net, norm = self.network, self.normalizer
        out = {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION),
            "hpsearch_version": np.array(__version__),
            "config": np.array(json.dumps({**net.config.to_dict(), "normalizer": norm.name, "norm_axis": norm.axis})),
            "sizes": np.array(net.sizes, dtype=np.int64),
            "norm_shift": np.asarray(norm.shift),
            "norm_scale": np.asarray(norm.scale),
            "norm_constant": np.array(norm.n_constant),
            "classes": np.array(self.classes, dtype=str),
            "info": np.array(json.dumps(self.info, default=_plain)),
        }
        for i, (W, b) in enumerate(zip(net.W, net.b, strict=True), 1):
            out[f"W_{i}"], out[f"b_{i}"] = W.copy(), b.copy()
        for i, (g, be) in enumerate(zip(net.gamma, net.beta, strict=True), 1):
            out[f"gamma_{i}"], out[f"beta_{i}"] = g.copy(), be.copy()
        for i, (m, v) in enumerate(zip(net.running_mean, net.running_var, strict=True), 1):
            out[f"mean_{i}"], out[f"var_{i}"] = m.copy(), v.copy()
        return out

    def save(self, path) -> Path:
        """Write the model to ``path`` (``.npz``) atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise HPSearchError(f"{path}: a model file ends in .npz")
        # a temporary file named after this process, created with the umask's mode like any other file
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.arrays())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def load_model(path) -> Model:
    """Read a file written by :meth:`Model.save` (NumPy only; no Optuna, no data set)."""
    from hpsearch.data import Normalizer
    from hpsearch.mlp import MLP, MLPConfig

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            a = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise HPSearchError(f"{path}: no such model file") from None
    except (OSError, ValueError) as exc:
        raise HPSearchError(f"{path}: not a model file ({exc})") from None
    if str(a.get("format", "")) != FORMAT:
        raise HPSearchError(f"{path}: not an hpsearch model file (no format = {FORMAT!r})")
    version = int(a["format_version"])
    if version > FORMAT_VERSION:
        raise HPSearchError(
            f"{path}: model format {version} is newer than this hpsearch reads ({FORMAT_VERSION}); upgrade hpsearch"
        )
    config = json.loads(str(a["config"]))
    norm_name, norm_axis = config.pop("normalizer"), config.pop("norm_axis")
    sizes = [int(s) for s in a["sizes"]]
    network = MLP(MLPConfig.from_dict(config), sizes[0], sizes[-1])
    if tuple(network.sizes) != tuple(sizes):
        raise HPSearchError(f"{path}: layer sizes {sizes} do not match the configuration's {network.sizes}")
    for i, (W, b) in enumerate(zip(network.W, network.b, strict=True), 1):
        W[...], b[...] = a[f"W_{i}"], a[f"b_{i}"]
    for i, (g, be) in enumerate(zip(network.gamma, network.beta, strict=True), 1):
        g[...], be[...] = a[f"gamma_{i}"], a[f"beta_{i}"]
    for i, (m, v) in enumerate(zip(network.running_mean, network.running_var, strict=True), 1):
        m[...], v[...] = a[f"mean_{i}"], a[f"var_{i}"]
    shift, scale = (np.asarray(a[k], dtype=np.float32) for k in ("norm_shift", "norm_scale"))
    normalizer = Normalizer(norm_name, norm_axis, sizes[0], shift, scale, int(a["norm_constant"]))
    return Model(network, normalizer, [str(c) for c in a["classes"]], json.loads(str(a["info"])))
