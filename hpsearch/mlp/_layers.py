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

import numpy as np

from hpsearch._registry import lookup
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
            from hpsearch.errors import DataError
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
                except FloatingPointError:
                    l, c = float("nan"), ws.count_correct(y[start:end])
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


class _Hidden:
    """Buffers of one hidden layer for ``rows`` samples."""

    __slots__ = ("u", "v", "f", "a", "cache", "rand", "mask", "g", "xc", "xhat", "tmp",
                 "mu", "var", "istd", "coef")


class Workspace:
    """Preallocated buffers and the forward / backward passes over ``rows`` samples.

    ``train=True`` uses batch statistics and dropout masks drawn from ``rng``;
    ``train=False`` uses running statistics and no dropout. ``freeze_masks`` keeps
    the dropout masks of the previous pass (for the gradient check).
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
        cfg = model.config
        self.bn = cfg.batch_norm
        self.dropout = cfg.dropout if train else 0.0
        self.inv_m = 1.0 / rows
        dt = model.dtype
        K = model.sizes[-1]

        hidden = model.sizes[1:-1]
        self.layers = []
        for i, width in enumerate(hidden):
            h = _Hidden()
            p = _parent.layers[i] if _parent is not None else None
            for name in ("u", "f", "cache"):
                setattr(h, name, np.empty((rows, width), dt) if p is None else getattr(p, name)[:rows])
            h.v = h.u
            if self.bn:
                for name in ("v", "xc", "xhat", "tmp"):
                    setattr(h, name, np.empty((rows, width), dt) if p is None else getattr(p, name)[:rows])
                for name in ("mu", "var", "istd", "coef"):  # per-feature, shared
                    setattr(h, name, np.empty(width, dt) if p is None else getattr(p, name))
            h.a = h.f
            if self.dropout:
                for name in ("a", "rand", "mask"):
                    setattr(h, name, np.empty((rows, width), dt) if p is None else getattr(p, name)[:rows])
            if train:
                h.g = np.empty((rows, width), dt) if p is None else p.g[:rows]
            self.layers.append(h)
        self.out = np.empty((rows, K), dt) if _parent is None else _parent.out[:rows]
        self.delta = np.empty((rows, K), dt) if _parent is None else _parent.delta[:rows]
        self.argmax = np.empty(rows, np.intp) if _parent is None else _parent.argmax[:rows]
        self.equal = np.empty(rows, bool) if _parent is None else _parent.equal[:rows]
        if _parent is None:
            self.loss_ws = model.loss.workspace(rows, K, dt)
            self.x = np.empty((rows, model.sizes[0]), dt) if train else None
            self.t = np.empty((rows, K), dt) if train else None
            self.y = np.empty(rows, np.intp) if train else None
            self.abs_out = np.empty((rows, K), dt)
            self.abs_hidden = np.empty((rows, hidden[-1]), dt)
            self.abs_w = np.empty(model.W[-1].shape, dt)
            self.wd_tmp = np.empty(model.n_weights, dt) if cfg.weight_decay else None
        else:
            self.loss_ws = {k: v[:rows] for k, v in _parent.loss_ws.items()}
            self.x = _parent.x[:rows] if train else None
            self.t = _parent.t[:rows] if train else None
            self.y = _parent.y[:rows] if train else None
            self.abs_out = _parent.abs_out[:rows]
            self.abs_hidden = _parent.abs_hidden[:rows]
            self.abs_w = _parent.abs_w
            self.wd_tmp = _parent.wd_tmp
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

    # -- forward -------------------------------------------------------------------
    def forward(self, x, train: bool | None = None) -> np.ndarray:
        """Output-layer pre-activations for ``x`` (rows, features); returns ``self.out``."""
        train = self.train if train is None else train
        model, act = self.model, self.model.activation
        W, b = model.W, model.b
        for i, h in enumerate(self.layers):
            try:
                np.matmul(x, W[i], out=h.u)
                np.add(h.u, b[i], out=h.u)
                if self.bn:
                    self._bn_forward(i, h, train)
                act.forward(h.v, h.f, h.cache)
                if self.dropout and train:
                    if not (self.freeze_masks and self._masks_drawn):
                        self.rng.random(out=h.rand, dtype=h.rand.dtype)
                        np.greater_equal(h.rand, self.dropout, out=h.mask)
                        np.multiply(h.mask, 1.0 / (1.0 - self.dropout), out=h.mask)
                    np.multiply(h.f, h.mask, out=h.a)
            except FloatingPointError as err:
                raise Blowup.from_fpe(err, f"forward layer {i + 1}") from None
            x = h.a
        self._masks_drawn = True
        try:
            np.matmul(x, W[-1], out=self.out)
            np.add(self.out, b[-1], out=self.out)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"forward layer {len(W)}") from None
        return self.out

    def _bn_forward(self, i, h, train):
        model = self.model
        if train:
            np.mean(h.u, axis=0, out=h.mu)
            np.subtract(h.u, h.mu, out=h.xc)
            np.multiply(h.xc, h.xc, out=h.tmp)
            np.mean(h.tmp, axis=0, out=h.var)
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
        """Summed loss over the rows (or ``None``) and ``delta = d mean-loss / d out``."""
        loss = self.model.loss
        try:
            return loss.forward_backward(self.out, t, self.loss_ws, self.delta, self.inv_m, want)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, loss.stage) from None

    def backward(self, x) -> None:
        """Fill ``model.grads`` from ``self.delta`` (call after forward on the same ``x``)."""
        model, act, layers = self.model, self.model.activation, self.layers
        W, dW, db = model.W, model.dW, model.db
        L = len(W)
        g = self.delta
        for i in range(L - 1, -1, -1):
            below = layers[i - 1] if i else None
            try:
                if i < L - 1:
                    h = layers[i]
                    if self.dropout:
                        np.multiply(h.g, h.mask, out=h.g)
                    act.backward(h.v, h.f, h.cache, h.g, h.g)
                    if self.bn:
                        self._bn_backward(i, h)
                    g = h.g
                np.matmul((below.a if below else x).T, g, out=dW[i])
                np.sum(g, axis=0, out=db[i])
                if below is not None:
                    np.matmul(g, W[i].T, out=below.g)
                    if i == L - 1:
                        # gradient flowing into the last hidden layer, before dropout / f'
                        self.trace[3] = _max_abs(below.g, self.abs_hidden)
            except FloatingPointError as err:
                raise Blowup.from_fpe(err, f"backward layer {i + 1}") from None
        wd = model.config.weight_decay
        if wd:
            try:
                np.multiply(model.params[:model.n_weights], wd, out=self.wd_tmp)
                np.add(model.grads[:model.n_weights], self.wd_tmp, out=model.grads[:model.n_weights])
            except FloatingPointError as err:
                raise Blowup.from_fpe(err, "backward weight decay") from None

    def _bn_backward(self, i, h):
        # with dv = dL/dv: du = gamma * istd / m * (m dv - sum(dv) - xhat * sum(dv * xhat))
        model = self.model
        dgamma, dbeta = model.dgamma[i], model.dbeta[i]
        dv = h.g
        np.sum(dv, axis=0, out=dbeta)
        np.multiply(dv, h.xhat, out=h.tmp)
        np.sum(h.tmp, axis=0, out=dgamma)
        np.multiply(h.xhat, dgamma, out=h.tmp)
        np.multiply(dv, float(self.rows), out=dv)
        np.subtract(dv, h.tmp, out=dv)
        np.subtract(dv, dbeta, out=dv)
        np.multiply(model.gamma[i], h.istd, out=h.coef)
        np.multiply(h.coef, self.inv_m, out=h.coef)
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
        tr[0] = _max_abs(out, self.abs_out)
        loss = self.loss_and_delta(self.t, want_metrics)
        correct = None
        if want_metrics:
            np.argmax(out, axis=1, out=self.argmax)
            np.equal(self.argmax, self.y, out=self.equal)
            correct = int(np.count_nonzero(self.equal))
        self.backward(self.x)
        model = self.model
        tr[2] = _max_abs(model.dW[-1], self.abs_w)
        try:
            optimizer.update(model.params, model.grads)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"update layer {self._worst_layer()}") from None
        tr[1] = _max_abs(model.W[-1], self.abs_w)
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
        np.argmax(self.out, axis=1, out=self.argmax)
        np.equal(self.argmax, y, out=self.equal)
        return int(np.count_nonzero(self.equal))


def _max_abs(a, scratch) -> float:
    np.abs(a, out=scratch)
    return float(np.maximum.reduce(scratch, axis=None))
