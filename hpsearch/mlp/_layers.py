"""The network: parameters in one flat vector, and workspaces of preallocated buffers.

Layout of the flat parameter vector (and of the gradient vector, same shape):
``[W_1 .. W_L, b_1 .. b_L, gamma_1 .. gamma_{L-1}, beta_1 .. beta_{L-1}]`` -- the
weights first, so weight decay is one slice, and an optimizer update is a few
ufunc calls whatever the depth. ``W_i`` has shape (fan_in, fan_out): ``u = x @ W + b``.

A :class:`Workspace` owns every buffer a forward/backward pass over ``rows``
samples needs; the training loop calls it once per mini-batch and allocates
nothing. A shorter last batch uses :meth:`Workspace.resized`, whose buffers are
views ``buf[:m]`` of the same memory.
"""

from __future__ import annotations

import math

import numpy as np

from hpsearch._registry import lookup
from hpsearch.errors import DataError
from hpsearch.mlp._activations import ACTIVATIONS
from hpsearch.mlp._initializers import BIAS_INITIALIZERS, INITIALIZERS
from hpsearch.mlp._losses import LOSSES

BN_EPS = 1e-5  # added to the batch variance before the square root
EVAL_ROWS = 1024  # rows per chunk when evaluating or predicting


class Blowup(Exception):
    """Internal: a floating-point error at a named stage (the trainer makes it ``Diverged``)."""

    def __init__(self, reason: str, where: str):
        super().__init__(f"{reason} in {where}")
        self.reason = reason
        self.where = where

    @classmethod
    def from_fpe(cls, err: FloatingPointError, where: str) -> "Blowup":
        return cls("nan" if "invalid" in str(err) else "overflow", where)


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
        n_w = sum(i * o for i, o in pairs)
        n_b = sum(o for _, o in pairs)
        n_bn = 2 * sum(hidden) if config.batch_norm else 0
        self.n_weights = n_w
        self.params = np.empty(n_w + n_b + n_bn, self.dtype)
        self.grads = np.zeros_like(self.params)
        self.W, self.b, self.dW, self.db = [], [], [], []
        self.gamma, self.beta, self.dgamma, self.dbeta = [], [], [], []
        at = 0
        for store, gstore, shapes in ((self.W, self.dW, pairs), (self.b, self.db, [(o,) for _, o in pairs])):
            for shape in shapes:
                n = int(np.prod(shape))
                store.append(self.params[at:at + n].reshape(shape))
                gstore.append(self.grads[at:at + n].reshape(shape))
                at += n
        if config.batch_norm:
            for store, gstore in ((self.gamma, self.dgamma), (self.beta, self.dbeta)):
                for width in hidden:
                    store.append(self.params[at:at + width])
                    gstore.append(self.grads[at:at + width])
                    at += width
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
            part = x[start:start + ws.rows]
            yield start, part, (ws if len(part) == ws.rows else ws.resized(len(part)))

    def scores(self, x) -> np.ndarray:
        """Output-layer pre-activations (logits), shape (n, K)."""
        out = np.empty((len(x), self.sizes[-1]), self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            for start, part, ws in self._chunks(x):
                out[start:start + len(part)] = ws.forward(part, train=False)
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
        y = np.asarray(y)
        t = one_hot(y, self.sizes[-1], self.dtype)
        loss = correct = 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for start, part, ws in self._chunks(x):
                end = start + len(part)
                try:
                    l, c = ws.evaluate(part, t[start:end], y[start:end])
                except Blowup:  # the loss overflowed: report it as infinite
                    l, c = math.inf, ws.count_correct(y[start:end])
                loss += l
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


def one_hot(y: np.ndarray, k: int, dtype) -> np.ndarray:
    t = np.zeros((len(y), k), dtype)
    t[np.arange(len(y)), y] = 1.0
    return t


class Workspace:
    """Preallocated buffers and the forward / backward passes over ``rows`` samples.

    ``train=True`` uses batch statistics and dropout masks drawn from ``rng``;
    ``train=False`` uses running statistics and no dropout. ``freeze_masks`` keeps
    the dropout masks of the previous pass (for the gradient check).
    ``grad_scale`` multiplies every gradient written to ``model.grads``: plain SGD
    sets it to the learning rate, so the update is a single subtraction.
    """

    def __init__(self, model: MLP, rows: int, train: bool, rng: np.random.Generator | None = None,
                 _parent: "Workspace | None" = None):
        self.model = model
        self.rows = rows
        self.train = train
        self.rng = rng
        self.freeze_masks = False
        self._masks_drawn = False
        self._resized = {}
        self.grad_scale = 1.0 if _parent is None else _parent.grad_scale
        cfg = model.config
        self.bn = cfg.batch_norm
        self.dropout = cfg.dropout if train else 0.0
        self.act_forward = model.activation.forward
        self.act_backward = model.activation.backward
        dt = model.dtype
        hidden, K = model.sizes[1:-1], model.sizes[-1]
        self.bufs = bufs = {}

        def rows_buf(key, cols, dtype=dt):  # (rows, cols), or the parent's first rows
            bufs[key] = (np.empty((rows, cols) if cols else rows, dtype) if _parent is None
                         else _parent.bufs[key][:rows])
            return bufs[key]

        def shared(key, shape, dtype=dt):  # per-feature: not sliced by rows
            bufs[key] = np.empty(shape, dtype) if _parent is None else _parent.bufs[key]
            return bufs[key]

        self.layers = []
        for i, w in enumerate(hidden):
            h = _Hidden()
            h.u = rows_buf(("u", i), w)
            h.f = rows_buf(("f", i), w)
            h.cache = rows_buf(("cache", i), w)
            h.v, h.a = h.u, h.f  # without batch norm / dropout these stages are identities
            if self.bn:
                h.v = rows_buf(("v", i), w)
                h.xc, h.xhat, h.tmp = (rows_buf((k, i), w) for k in ("xc", "xhat", "tmp"))
                h.mu, h.var, h.istd, h.coef = (shared((k, i), w) for k in ("mu", "var", "istd", "coef"))
            if self.dropout:
                h.a, h.rand, h.mask = (rows_buf((k, i), w) for k in ("a", "rand", "mask"))
            if train:
                h.g = rows_buf(("g", i), w)
            h.aT = h.a.T
            self.layers.append(h)
        self.out = rows_buf("out", K)
        self.delta = rows_buf("delta", K)
        self.argmax = rows_buf("argmax", 0, np.intp)
        self.equal = rows_buf("equal", 0, bool)
        self.ones = rows_buf("ones", 0)  # row sums as a matrix-vector product
        if _parent is None:
            self.ones.fill(1.0)
        self.mean_vec = np.full(rows, 1.0 / rows, dt)  # depends on rows: never shared
        self.loss_ws = {k: rows_buf(("loss", k), v.shape[1])
                        for k, v in model.loss.workspace(1, K, dt).items()}
        self.abs_out = rows_buf("abs_out", K)
        self.abs_hidden = rows_buf("abs_hidden", hidden[-1])
        self.abs_w = shared("abs_w", model.W[-1].shape)
        if train:
            self.x = rows_buf("x", model.sizes[0])
            self.t = rows_buf("t", K)
            self.y = rows_buf("y", 0, np.intp)
        self.wd = cfg.weight_decay
        if self.wd:
            self.wd_tmp = shared("wd_tmp", model.n_weights)
            self.p_w = model.params[:model.n_weights]
            self.g_w = model.grads[:model.n_weights]
        # the last training step's max |preact out|, |W out|, |dW out|, |grad hidden|
        self.trace = _parent.trace if _parent is not None else [None] * 4

    def resized(self, m: int) -> "Workspace":
        """A workspace over the first ``m`` rows of the same memory (cached)."""
        if m == self.rows:
            return self
        ws = self._resized.get(m)
        if ws is None:
            ws = self._resized[m] = Workspace(self.model, m, self.train, self.rng, _parent=self)
        return ws

    def load(self, x, t, y, idx, labels: bool) -> None:
        """Gather the rows ``idx`` of the training arrays into this workspace."""
        x.take(idx, axis=0, out=self.x, mode="clip")
        t.take(idx, axis=0, out=self.t, mode="clip")
        if labels:
            y.take(idx, out=self.y, mode="clip")

    # -- forward -------------------------------------------------------------------
    def forward(self, x, train: bool) -> np.ndarray:
        """Output-layer pre-activations for ``x`` (rows, features); returns ``self.out``."""
        model, act = self.model, self.act_forward
        W, b = model.W, model.b
        dropout = self.dropout if train else 0.0
        i = 0
        try:
            for i, h in enumerate(self.layers):
                np.matmul(x, W[i], out=h.u)
                np.add(h.u, b[i], out=h.u)
                if self.bn:
                    self._bn_forward(i, h, train)
                act(h.v, h.f, h.cache)
                if dropout:
                    if not (self.freeze_masks and self._masks_drawn):
                        self.rng.random(out=h.rand, dtype=h.rand.dtype)
                        np.greater_equal(h.rand, dropout, out=h.mask)
                        np.multiply(h.mask, 1.0 / (1.0 - dropout), out=h.mask)
                    np.multiply(h.f, h.mask, out=h.a)
                x = h.a
            i += 1
            np.matmul(x, W[i], out=self.out)
            np.add(self.out, b[i], out=self.out)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"forward layer {i + 1}") from None
        self._masks_drawn = True
        return self.out

    def _bn_forward(self, i, h, train):
        model = self.model
        if train:
            np.matmul(self.mean_vec, h.u, out=h.mu)
            np.subtract(h.u, h.mu, out=h.xc)
            np.multiply(h.xc, h.xc, out=h.tmp)
            np.matmul(self.mean_vec, h.tmp, out=h.var)
            np.add(h.var, BN_EPS, out=h.istd)
            np.sqrt(h.istd, out=h.istd)
            np.divide(1.0, h.istd, out=h.istd)
            np.multiply(h.xc, h.istd, out=h.xhat)
            # running += (1 - momentum) * (batch - running)
            keep = 1.0 - model.config.bn_momentum
            for run, batch in ((model.running_mean[i], h.mu), (model.running_var[i], h.var)):
                np.subtract(batch, run, out=h.coef)
                np.multiply(h.coef, keep, out=h.coef)
                np.add(run, h.coef, out=run)
        else:
            np.add(model.running_var[i], BN_EPS, out=h.istd)
            np.sqrt(h.istd, out=h.istd)
            np.divide(1.0, h.istd, out=h.istd)
            np.subtract(h.u, model.running_mean[i], out=h.xhat)
            np.multiply(h.xhat, h.istd, out=h.xhat)
        np.multiply(h.xhat, model.gamma[i], out=h.v)
        np.add(h.v, model.beta[i], out=h.v)

    # -- loss and backward -----------------------------------------------------------
    def loss_and_delta(self, t, want: bool):
        """Summed loss over the rows (or ``None``); ``delta = grad_scale * d mean-loss / d out``."""
        loss = self.model.loss
        try:
            return loss.forward_backward(self.out, t, self.loss_ws, self.delta,
                                         self.grad_scale / self.rows, want)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, loss.stage) from None

    def backward(self, x) -> None:
        """Fill ``model.grads`` (times ``grad_scale``) from ``self.delta``; ``x`` as in forward."""
        model, act, layers, ones = self.model, self.act_backward, self.layers, self.ones
        W, dW, db = model.W, model.dW, model.db
        i = len(W) - 1
        try:
            g, top = self.delta, layers[-1]
            np.matmul(top.aT, g, out=dW[i])
            np.matmul(ones, g, out=db[i])
            np.matmul(g, W[i].T, out=top.g)
            # gradient flowing into the last hidden layer, before dropout and f'
            np.abs(top.g, out=self.abs_hidden)
            self.trace[3] = float(np.maximum.reduce(self.abs_hidden, axis=None)) / self.grad_scale
            for i in range(i - 1, -1, -1):
                h = layers[i]
                g = h.g
                if self.dropout:
                    np.multiply(g, h.mask, out=g)
                act(h.v, h.f, h.cache, g, g)
                if self.bn:
                    self._bn_backward(i, h)
                np.matmul(layers[i - 1].aT if i else x.T, g, out=dW[i])
                np.matmul(ones, g, out=db[i])
                if i:
                    np.matmul(g, W[i].T, out=layers[i - 1].g)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"backward layer {i + 1}") from None
        if self.wd:
            try:
                np.multiply(self.p_w, self.wd * self.grad_scale, out=self.wd_tmp)
                np.add(self.g_w, self.wd_tmp, out=self.g_w)
            except FloatingPointError as err:
                raise Blowup.from_fpe(err, "backward weight decay") from None

    def _bn_backward(self, i, h):
        # with dv = dL/dv: du = gamma * istd / m * (m dv - sum(dv) - xhat * sum(dv * xhat))
        model, ones = self.model, self.ones
        dgamma, dbeta = model.dgamma[i], model.dbeta[i]
        dv = h.g
        np.matmul(ones, dv, out=dbeta)
        np.multiply(dv, h.xhat, out=h.tmp)
        np.matmul(ones, h.tmp, out=dgamma)
        np.multiply(h.xhat, dgamma, out=h.tmp)
        np.multiply(dv, float(self.rows), out=dv)
        np.subtract(dv, h.tmp, out=dv)
        np.subtract(dv, dbeta, out=dv)
        np.multiply(model.gamma[i], h.istd, out=h.coef)
        np.multiply(h.coef, 1.0 / self.rows, out=h.coef)
        np.multiply(dv, h.coef, out=dv)

    # -- the training step, fused --------------------------------------------------
    def train_step(self, optimizer, want_metrics: bool):
        """One mini-batch from ``self.x`` / ``self.t`` / ``self.y``: forward, backward, update.

        Returns ``(summed loss, correct count)`` when ``want_metrics``, else ``(None, None)``.
        The step's magnitudes (``hpsearch.mlp.TRACE_COLUMNS``) are left in ``self.trace``;
        a stage that was not reached (the step blew up before it) leaves ``None``.
        """
        tr = self.trace
        tr[0] = tr[1] = tr[2] = tr[3] = None
        out = self.forward(self.x, True)
        np.abs(out, out=self.abs_out)
        tr[0] = float(np.maximum.reduce(self.abs_out, axis=None))
        loss = self.loss_and_delta(self.t, want_metrics)
        correct = None
        if want_metrics:
            out.argmax(axis=1, out=self.argmax)
            np.equal(self.argmax, self.y, out=self.equal)
            correct = np.count_nonzero(self.equal)
        self.backward(self.x)
        model, abs_w = self.model, self.abs_w
        np.abs(model.dW[-1], out=abs_w)
        tr[2] = float(np.maximum.reduce(abs_w, axis=None)) / self.grad_scale
        try:
            optimizer.update(model.params, model.grads)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"update layer {self._worst_layer()}") from None
        np.abs(model.W[-1], out=abs_w)
        tr[1] = float(np.maximum.reduce(abs_w, axis=None))
        return loss, correct

    def _worst_layer(self) -> int:
        """1-based layer whose parameters went non-finite, else whose gradient is largest."""
        model = self.model
        for i, (W, b) in enumerate(zip(model.W, model.b)):
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                return i + 1
        with np.errstate(all="ignore"):
            sizes = [max(np.abs(dW).max(), np.abs(db).max()) for dW, db in zip(model.dW, model.db)]
        return int(np.argmax(sizes)) + 1

    # -- evaluation ----------------------------------------------------------------
    def evaluate(self, x, t, y):
        """``(summed loss, correct count)`` over the rows of ``x`` in eval mode."""
        self.forward(x, False)
        loss = self.loss_and_delta(t, True)
        return loss, self.count_correct(y)

    def count_correct(self, y) -> int:
        self.out.argmax(axis=1, out=self.argmax)
        np.equal(self.argmax, y, out=self.equal)
        return int(np.count_nonzero(self.equal))


class _Hidden:
    """Buffers of one hidden layer for ``rows`` samples (``aT`` is ``a.T``, kept as a view)."""

    __slots__ = ("u", "v", "f", "a", "aT", "cache", "rand", "mask", "g", "xc", "xhat", "tmp",
                 "mu", "var", "istd", "coef")
