"""The network: its parameters in one flat vector, ``predict`` and ``evaluate``.

Layout of the flat parameter vector (and of the gradient vector, same shape):
``[Wb_1 .. Wb_L, gamma_1 .. gamma_{L-1}, beta_1 .. beta_{L-1}]`` where ``Wb_i`` is the
``(fan_in + 1, fan_out)`` block ``[W_i; b_i]``: the weights with the bias as one more
row, so ``u = x @ W + b = [x, 1] @ Wb`` and an optimizer update is a few ufunc calls
whatever the depth. ``MLP.W[i]`` and ``MLP.b[i]`` are views of the block. The passes
themselves run in a :class:`~hpsearch.mlp._workspace.Workspace`.
"""

from __future__ import annotations

import math

import numpy as np

from hpsearch._registry import lookup
from hpsearch.errors import DataError
from hpsearch.mlp._activations import ACTIVATIONS
from hpsearch.mlp._initializers import BIAS_INITIALIZERS, INITIALIZERS
from hpsearch.mlp._losses import LOSSES
from hpsearch.mlp._workspace import Blowup, Workspace

EVAL_ROWS = 512  # rows per chunk when evaluating or predicting (matrix products run fastest here)


class MLP:
    """A multilayer perceptron: ``predict``, ``evaluate``, and a readable ``repr``."""

    def __init__(self, config, n_features: int, n_classes: int, rng: np.random.Generator | None = None):
        self.config = config
        self.dtype = np.dtype(config.dtype)
        self.sizes = (int(n_features), *config.hidden, int(n_classes))
        self.activation = lookup(ACTIVATIONS, config.activation, "activation").from_config(config)
        self.loss = lookup(LOSSES, config.loss, "loss")()
        rng = np.random.default_rng(config.seed) if rng is None else rng

        pairs = list(zip(self.sizes[:-1], self.sizes[1:]))
        hidden = self.sizes[1:-1]
        n_wb = sum((i + 1) * o for i, o in pairs)
        n_bn = 2 * sum(hidden) if config.batch_norm else 0
        self.n_weights = sum(i * o for i, o in pairs)
        self.params = np.empty(n_wb + n_bn, self.dtype)
        self.grads = np.zeros_like(self.params)
        self.Wb, self.W, self.b, self.gamma, self.beta = self.carve(self.params)
        self.dWb, self.dW, self.db, self.dgamma, self.dbeta = self.carve(self.grads)
        # 1 where a parameter is a weight (weight decay applies), 0 for biases and batch norm
        self.weight_mask = np.zeros_like(self.params)
        for w in self.carve(self.weight_mask)[1]:
            w.fill(1.0)
        self.running_mean = [np.zeros(w, self.dtype) for w in hidden] if config.batch_norm else []
        self.running_var = [np.ones(w, self.dtype) for w in hidden] if config.batch_norm else []

        w_init = lookup(INITIALIZERS, config.weight_init, "weight initializer")
        b_init = lookup(BIAS_INITIALIZERS, config.bias_init, "bias initializer")
        for (fan_in, fan_out), W, b in zip(pairs, self.W, self.b):
            W[...] = w_init(rng, fan_in, fan_out, config, self.dtype)
            b[...] = b_init(rng, fan_in, fan_out, config, self.dtype)
        for g, be in zip(self.gamma, self.beta):
            g.fill(1.0)
            be.fill(0.0)

    def carve(self, flat: np.ndarray):
        """Views ``(Wb, W, b, gamma, beta)`` of a vector laid out like ``params``."""
        Wb, W, b, gamma, beta = [], [], [], [], []
        at = 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            n = (fan_in + 1) * fan_out
            block = flat[at : at + n].reshape(fan_in + 1, fan_out)
            Wb.append(block)
            W.append(block[:fan_in])
            b.append(block[fan_in])
            at += n
        if self.config.batch_norm:
            for store in (gamma, beta):
                for width in self.sizes[1:-1]:
                    store.append(flat[at : at + width])
                    at += width
        return Wb, W, b, gamma, beta

    # -- state (keep_best) ---------------------------------------------------------
    def get_state(self) -> list[np.ndarray]:
        return [a.copy() for a in (self.params, *self.running_mean, *self.running_var)]

    def set_state(self, state: list[np.ndarray]) -> None:
        for dst, src in zip((self.params, *self.running_mean, *self.running_var), state):
            dst[...] = src

    # -- inference -----------------------------------------------------------------
    def _chunks(self, x):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise DataError(f"x must have shape (n, {self.sizes[0]}), got {x.shape}")
        ws = Workspace(self, min(EVAL_ROWS, max(len(x), 1)), train=False)
        for start in range(0, len(x), ws.rows):
            part = x[start : start + ws.rows]
            yield start, part, ws.resized(len(part))

    def scores(self, x) -> np.ndarray:
        """Output-layer pre-activations (logits), shape (n, K)."""
        out = np.empty((len(x), self.sizes[-1]), self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            for start, part, ws in self._chunks(x):
                out[start : start + len(part)] = ws.forward(part, train=False)
        return out

    def predict_proba(self, x) -> np.ndarray:
        """Network outputs: softmax probabilities (cross-entropy) or raw outputs (MSE)."""
        u = self.scores(x)
        out = np.empty_like(u)
        ws = self.loss.workspace(len(u), u.shape[1], self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            self.loss.output(u, ws, out)
        return out

    def predict(self, x) -> np.ndarray:
        """Class labels, shape (n,)."""
        return np.argmax(self.scores(x), axis=1)

    def evaluate(self, x, y) -> dict:
        """Mean loss (without the weight-decay term) and accuracy over ``(x, y)``."""
        y = np.asarray(y, dtype=np.intp)
        loss = correct = 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for start, part, ws in self._chunks(x):
                end = start + len(part)
                try:
                    part_loss, c = ws.evaluate(part, y[start:end])
                except Blowup:  # the loss overflowed: report it as infinite
                    part_loss, c = math.inf, ws.count_correct(y[start:end])
                loss += part_loss
                correct += c
        n = max(len(y), 1)
        return {"loss": loss / n, "accuracy": correct / n}

    def __repr__(self) -> str:
        c = self.config
        parts = ["MLP [" + "→".join(map(str, self.sizes)) + "]", repr(self.activation)]
        if c.loss != "cross_entropy":
            parts.append(c.loss)
        if c.batch_norm:
            parts.append("batch_norm")
        if c.dropout:
            parts.append(f"dropout={c.dropout:.3g}")
        parts.append(f"{c.optimizer} lr={c.lr:.3g}")
        if c.weight_decay:
            parts.append(f"weight_decay={c.weight_decay:.3g}")
        return " ".join(parts)
