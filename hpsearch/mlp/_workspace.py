"""Workspaces: every buffer of a forward/backward pass over ``rows`` samples, and the passes.

A :class:`Workspace` owns every buffer a forward/backward pass over ``rows`` samples
needs; the training loop calls it once per mini-batch and allocates nothing.
Every layer's arrays are indexed ``(width, rows)``, one column per sample: a hidden
layer's output is a ``(width + 1, rows)`` array whose last row is ones, so the next
layer's bias is part of its matrix product and the bias gradient part of the
weight-gradient product, and the reductions over classes run along contiguous rows.
The input batch is row-major (rows gathered from the training set) and the first
layer adds its bias itself; with BLAS kernels that run its products with the inputs,
``x @ W_1`` and ``x^T @ g``, fastest that way (OpenBLAS's AVX-512 ones), the first
hidden layer's arrays are stored sample-major, as transposes of C arrays (see the
layer loop in :class:`Workspace`).
A shorter last batch uses :meth:`Workspace.resized` (cached).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from hpsearch.mlp import _blas

if TYPE_CHECKING:
    from hpsearch.mlp._network import MLP

BN_EPS = 1e-5  # added to the batch variance before the square root
FUSE_MAX_ROWS = 32  # batch size up to which scipy's gemm (the fallback) beats the plain path
# the floating-point state training and evaluation passes run under: the first overflow
# or NaN raises where it happens (see Blowup); underflow to 0 is harmless
ERRSTATE = dict(over="raise", invalid="raise", divide="raise", under="ignore")
_add = np.add
_dot = np.dot


class ConstantInputs:
    """Inputs that hold one value in every training row, folded into the first layer's bias.

    Such an input ``j`` adds ``c_j W_1[j]`` to every pre-activation of the first layer:
    a bias term, and its weights' gradient is ``c_j`` times the bias gradient. The
    trainer orders the rows of ``W_1`` so that the ``active`` varying inputs come
    first; a training :class:`Workspace` then takes the first layer's products over
    those inputs only and adds the constant ones' term to the bias (the arithmetic is
    the same, minus products of values that never change). ``values`` are the
    constant inputs' values, or ``None`` when every one is 0 (then they add nothing
    and their gradient is 0).

    ``offsets`` (or ``None``: all 0), one per active input, are subtracted from the
    inputs the workspace is given (so that their most common value becomes 0, which
    the column blocks skip); their share ``offsets @ W_1`` goes to the bias and
    ``offsets * (bias gradient)`` to the weights' gradient, as for a constant input.
    """

    __slots__ = ("active", "values", "offsets")

    def __init__(self, active: int, values: np.ndarray | None, offsets: np.ndarray | None = None):
        self.active = int(active)
        self.values = values
        self.offsets = offsets


class Blowup(Exception):
    """Internal: a floating-point error at a named stage (the trainer makes it ``Diverged``)."""

    def __init__(self, reason: str, where: str):
        super().__init__(f"{reason} in {where}")
        self.reason = reason
        self.where = where

    @classmethod
    def from_fpe(cls, err: FloatingPointError, where: str) -> Blowup:
        return cls("nan" if "invalid" in str(err) else "overflow", where)


def one_hot(y: np.ndarray, k: int, dtype) -> np.ndarray:
    t = np.zeros((len(y), k), dtype)
    t[np.arange(len(y)), y] = 1.0
    return t


def count_correct(scores: np.ndarray, y: np.ndarray) -> int:
    """How many columns of ``scores`` (K, n) have their first maximum at row ``y``:
    ``argmax(scores, axis=0) == y``, without argmax's slow walk across rows."""
    is_max = scores == np.maximum.reduce(scores, axis=0)
    rank = np.arange(len(scores), 0, -1, dtype=np.int32)[:, None]  # K - row: the first max ranks highest
    first = len(scores) - np.maximum.reduce(is_max * rank, axis=0)
    return int(np.count_nonzero(first == y))


class Workspace:
    """Preallocated buffers and the forward / backward passes over ``rows`` samples.

    ``train=True`` uses batch statistics and dropout masks drawn from ``rng``;
    ``train=False`` uses running statistics and no dropout. ``freeze_masks`` keeps
    the dropout masks of the previous pass (for the gradient check).
    ``grad_scale`` multiplies every gradient written to ``model.grads``: plain SGD
    sets it to the learning rate, so the update is a single subtraction.
    ``tracing`` makes :meth:`train_step` record the step's magnitudes in ``trace``
    (``hpsearch.mlp.TRACE_COLUMNS``); the trainer turns it on only to replay the
    steps before a divergence.
    ``constant`` (:class:`ConstantInputs`) and :meth:`set_blocks` let the first layer's
    products skip inputs that are constant, or 0 in the rows at hand (the trainer's
    input reordering); without them every input is multiplied.
    """

    def __init__(
        self,
        model: MLP,
        rows: int,
        train: bool,
        rng: np.random.Generator | None = None,
        grad_scale: float = 1.0,
        constant: ConstantInputs | None = None,
    ):
        self.model = model
        self.constant = constant
        self.rows = rows
        self.train = train
        self.rng = rng
        self.freeze_masks = False
        self._masks_drawn = False
        self._resized = {}
        self.tracing = False
        self.trace = [None] * 4
        cfg = model.config
        self.bn = cfg.batch_norm
        self.dropout = cfg.dropout if train else 0.0
        self.act_forward = model.activation.forward
        self.act_backward = model.activation.backward
        self.loss = model.loss
        dt = self.dtype = model.dtype
        sizes = model.sizes
        hidden, K = sizes[1:-1], sizes[-1]
        m = rows

        def e(*shape):
            return np.empty(shape, dt)

        self.ones = np.ones(m, dt)
        # the rows of W_1 that meet the inputs held in x (see ConstantInputs), and the rest
        n_in = sizes[0] if constant is None else constant.active
        self.W1, self.W1c = model.W[0][:n_in], model.W[0][n_in:]
        self.dW1, self.dW1c = model.dW[0][:n_in], model.dW[0][n_in:]
        # Every input j of W_1's rows is shifted by s_j: the constant ones by their value
        # (their products drop out), the active ones by their offset (0 unless given).
        # ``s @ W_1`` joins the bias and ``s * (bias gradient)`` the weights' gradient, over
        # the rows where s may be nonzero (``shift``: None when it is 0 everywhere).
        self.shift = None
        if constant is not None and (constant.values is not None or constant.offsets is not None):
            lo = 0 if constant.offsets is not None else n_in
            hi = sizes[0] if constant.values is not None else n_in
            s = np.zeros(sizes[0], dt)
            if constant.offsets is not None:
                s[:n_in] = constant.offsets
            if constant.values is not None:
                s[n_in:] = constant.values
            self.shift = s[lo:hi]
            self.shift_col = self.shift[:, None]
            self.W1s, self.dW1s = model.W[0][lo:hi], model.dW[0][lo:hi]
            self.shift_tmp = np.empty(self.W1s.shape, dt)
            self.b1_eff = e(hidden[0], 1)
        # Column blocks (see set_blocks): block j of the inputs meets only the first
        # reach[j] rows of a batch, the others being 0 there; or one start for all rows
        self.reach = None
        self.start = 0
        self.cuts = self.ends = self.row_first = self.block_product = None
        self.block_flags = None  # the kernel whose flags tell an overflow in the blocks' products
        self.mean_vec = np.full(m, 1.0 / m, dt)
        self.out = e(K, m)
        self.delta = e(K, m)
        self.deltaT = self.delta.T

        def e_t(*shape):  # (width, rows) stored sample-major: the transpose of a C array
            return np.empty(shape[::-1], dt).T

        # The first hidden layer is stored sample-major (its (width, rows) arrays are
        # transposes of C arrays) where the BLAS runs its products faster that way: with
        # OpenBLAS's AVX-512 kernels x @ W_1 takes a fifth less time than W_1^T @ x^T at
        # batch 100 and 1000, x^T @ g 4-6 % less than x^T @ g^T, and the products with the
        # second layer take either form at the same speed. Its AVX2 kernels run them level
        # from 100 rows and slower below (a run at batch 10 5 % longer): there, as with any
        # other BLAS, the layer is feature-major like the others (_blas.SAMPLE_MAJOR_KERNELS).
        self.sample_major = _blas.sample_major_first_layer()
        self.layers = []
        for i, w in enumerate(hidden):
            h = _Hidden()
            t = e_t if i == 0 and self.sample_major else e
            h.u = t(w, m)
            h.aug = t(w + 1, m)
            h.aug[w] = 1.0  # the ones row: the next layer's bias
            h.a = h.aug[:w]
            h.v = h.u
            h.f = h.a
            h.cache = t(w, m)
            if self.bn:
                h.v = t(w, m)
                h.xc, h.xhat, h.tmp = t(w, m), t(w, m), t(w, m)
                h.mu, h.var, h.istd, h.coef = e(w), e(w), e(w), e(w)
                h.mu_c, h.istd_c, h.coef_c = h.mu[:, None], h.istd[:, None], h.coef[:, None]
                h.gamma_c, h.beta_c = model.gamma[i][:, None], model.beta[i][:, None]
                h.dgamma_c, h.dbeta_c = model.dgamma[i][:, None], model.dbeta[i][:, None]
                h.rmean_c = model.running_mean[i][:, None]
            if self.dropout:  # the uniform draws in (width, rows) C order, whatever the layer's
                h.f, h.rand, h.mask = t(w, m), e(w, m), t(w, m)
            # products as bound methods of fixed views: u = [W; b]^T @ [a_prev; 1] (the first
            # layer's, x @ W_1 into u1s, is taken in _forward and _fast_step)
            h.forward_dot = None if i == 0 else model.Wb[i].T.dot
            if train:
                h.g = t(w, m)
                h.gT = h.g.T
                if i:  # dWb_i = [a_prev; 1] @ g^T and g_prev = W_i @ g
                    h.grad_dot = self.layers[-1].aug.dot
                    h.back_dot = _back_product(model.W[i], self.layers[-1].g)
                else:  # dW_1 = x^T @ g^T and db_1 = g @ 1 (x sample-major)
                    self.g1 = h.g
                    h.bias_grad_dot = partial(np.dot, h.g, self.ones)
            self.layers.append(h)
        top = self.layers[-1]
        # u1s: (rows, width) C-contiguous, where the first layer's products x @ W_1 go: the
        # layer's own pre-activations when it is stored sample-major; feature-major, the
        # products W_1^T @ x^T write the layer itself and only the column blocks need u1s
        # (a buffer the bias add copies from, made by set_blocks)
        self.u1s = self.layers[0].u.T if self.sample_major else None
        self.W1T = self.W1.T
        self.b1 = model.b[0][:, None]
        self.out_dot = model.Wb[-1].T.dot
        self.out_grad_dot = top.aug.dot
        self.out_back_dot = _back_product(model.W[-1], top.g) if train else None
        self.loss_ws = model.loss.fm_workspace(m, K, dt)
        self.abs_out = e(K, m)
        self.abs_hidden = e(hidden[-1], m)
        self.abs_w = np.empty(model.W[-1].shape, dt)
        if train:
            self.x = np.empty((m, n_in), dt)
            self.xT = self.x.T
            self.t = e(K, m)
        self.wd = cfg.weight_decay
        if self.wd:
            self.wd_tmp = np.empty_like(model.params)
        self.fused = None
        self._fast = None
        self.grad_scale = grad_scale

    @property
    def grad_scale(self) -> float:
        return self._grad_scale

    @grad_scale.setter
    def grad_scale(self, value: float) -> None:
        self._grad_scale = float(value)
        # d mean-loss / d out carries 1 / rows; held as a typed scalar (no conversion per call)
        self.scale = self.dtype.type(self._grad_scale / self.rows)
        if self.wd:
            self.wd_vec = self.model.weight_mask * (self.wd * self._grad_scale)

    def fuse_sgd(self, optimizer) -> bool:
        """Let :meth:`train_step` apply a ``fusable`` optimizer's update (plain SGD:
        ``params -= grads``) to the first layer's weights inside the
        product that computes their gradient (``W -= x^T @ g`` as one BLAS ``gemm`` with
        ``beta = 1``): that gradient is never written out nor read back by the update,
        which then covers the other parameters only. Only where the call's floating-point
        exception flags can be read, so an overflow in it is caught at that step like any
        other (see :mod:`hpsearch.mlp._blas`). Returns whether it is on."""
        kernel = _blas.update_kernel(self.dtype)
        if not (
            self.train
            and optimizer.fusable
            and kernel is not None
            and (kernel.any_rows or self.rows <= FUSE_MAX_ROWS)
            and optimizer.prescale == self._grad_scale
        ):
            return False
        model = self.model
        n1 = model.W[0].size  # W_1 opens the parameter vector
        beta = 1.0 - self.wd * self._grad_scale  # weight decay: W <- (1 - lr wd) W - lr dW
        self.fused = (
            kernel,
            kernel.bind(self.W1, self.x, self.g1.T if self.sample_major else self.g1, beta, self.sample_major),
            model.params[n1:],
            model.grads[n1:],
            self.wd_vec[n1:] if self.wd else None,
            self.wd_tmp[n1:] if self.wd else None,
        )
        self._fast = self._fast_plan(optimizer)
        return True

    def _fast_plan(self, optimizer):
        """What :meth:`_fast_step` needs, or ``None`` where it does not apply: the fused
        SGD update without batch norm, dropout, weight decay or shifted inputs (the
        trainer's common case). Every view, buffer and bound method is looked up here
        once: at batch 10 the per-step Python overhead is a large part of a step."""
        if self.bn or self.dropout or self.wd or self.shift is not None:
            return None
        model, layers = self.model, self.layers
        n = len(layers)
        kernel, update_w1, rest_p, rest_g = self.fused[:4]
        h0 = layers[0]
        # layer i >= 1: (product, its input, u, f(u), cache)
        forward = tuple(
            (h.forward_dot, layers[i - 1].aug, h.u, h.a, h.cache, f"forward layer {i + 1}")
            for i, h in enumerate(layers)
            if i
        )
        # layer i >= 1, top down: (u, f(u), cache, g, weight-gradient product, g^T, dWb_i, back product, g below)
        backward = tuple(
            (
                h.u,
                h.a,
                h.cache,
                h.g,
                h.grad_dot,
                h.gT,
                model.dWb[i],
                h.back_dot,
                layers[i - 1].g,
                f"backward layer {i + 1}",
            )
            for i, h in reversed(list(enumerate(layers)))
            if i
        )
        return (
            optimizer,
            optimizer.update,
            self.x,
            self.W1,
            self.u1s,
            self.xT,
            self.W1T,
            self.sample_major,
            self.b1,
            h0.u,
            h0.a,
            h0.cache,
            h0.g,
            self.act_forward,
            self.act_backward,
            forward,
            backward,
            self.out_dot,
            layers[-1].aug,
            self.loss.fm_delta_fast,
            self.t,
            self.loss_ws,
            self.delta,
            self.deltaT,
            self.out_grad_dot,
            model.dWb[n],
            self.out_back_dot,
            layers[-1].g,
            h0.bias_grad_dot,
            model.db[0],
            kernel,
            update_w1,
            rest_p,
            rest_g,
            f"forward layer {n + 1}",
            f"backward layer {n + 1}",
        )

    def set_blocks(self, cuts: np.ndarray, row_first: np.ndarray) -> None:
        """Split the inputs into column blocks at ``cuts`` (ascending, from 0) for the first
        layer's products. ``row_first`` holds the first nonzero input of every training
        row; :meth:`load` expects the rows of a batch sorted by it, so block ``j`` meets
        only the rows whose first nonzero input comes before its end (a prefix: its
        ``reach``); the products of the other rows with it are products with 0.
        Without numpy's BLAS for the accumulating products, blocks cost an extra pass."""
        n_in = self.W1.shape[0]
        self.cuts = [int(c) for c in cuts] + [n_in]
        self.ends = np.array(self.cuts[1:])
        self.row_first = row_first
        self.reach = None
        if self.u1s is None:
            self.u1s = np.empty((self.rows, self.W1.shape[1]), self.dtype)
            if self._fast is not None:  # the fast step's views include u1s
                self._fast = self._fast_plan(self._fast[0])
        kernel = _blas.update_kernel(self.dtype)
        if kernel is not None and kernel.product is not None:
            self.block_product = kernel.product(self.x, self.W1, self.u1s)
            self.block_flags = kernel  # numpy does not see this call's flags: read them
        else:
            self.block_product = self._numpy_block_product
            self.u1_tmp = np.empty(self.u1s.shape, self.dtype)

    def _numpy_block_product(self, lo, hi, rows, accumulate):
        # the first layer's u1s[:rows] (+)= x[:rows, lo:hi] @ W_1[lo:hi]
        u = self.u1s[:rows]
        if not accumulate:
            np.dot(self.x[:rows, lo:hi], self.W1[lo:hi], out=u)
            return
        tmp = self.u1_tmp[:rows]
        np.dot(self.x[:rows, lo:hi], self.W1[lo:hi], out=tmp)
        _add(u, tmp, out=u)

    def block_reach(self, first_sorted: np.ndarray) -> np.ndarray:
        """Per block, how many of the rows (whose first nonzero inputs, ascending, are
        ``first_sorted`` (..., rows)) it meets: shape (..., blocks)."""
        return np.add.reduce(first_sorted[..., None, :] < self.ends[:, None], axis=-1)

    def resized(self, m: int) -> Workspace:
        """A workspace like this one over ``m`` rows (cached)."""
        if m == self.rows:
            return self
        ws = self._resized.get(m)
        if ws is None:
            ws = self._resized[m] = Workspace(self.model, m, self.train, self.rng, self._grad_scale, self.constant)
            ws.trace = self.trace
            if self.cuts is not None and self.train:
                ws.set_blocks(self.cuts[:-1], self.row_first)
        return ws

    def load(self, x, ts, idx) -> None:
        """Gather the rows ``idx`` of the training inputs ``x`` and the columns of the
        scaled one-hot targets ``ts`` (K, n) into this workspace."""
        x.take(idx, axis=0, out=self.x, mode="clip")
        ts.take(idx, axis=1, out=self.t, mode="clip")
        if self.row_first is not None:
            self.reach = self.block_reach(self.row_first[idx]).tolist()

    # -- forward -------------------------------------------------------------------
    def _blocked_first_layer(self, reach) -> None:
        """The first layer's forward product (into ``u1s``) block by block, each block over the
        rows it meets (``reach``, from the last one, which meets every row, down to the first
        that meets none). BLAS is called through ctypes, whose floating-point flags numpy never
        reads: read them here."""
        cuts, block, flags = self.cuts, self.block_product, self.block_flags
        if flags is not None:
            flags.clear_flags()
        last = len(reach) - 1
        block(cuts[last], cuts[last + 1], reach[last], False)  # the last block meets every row
        for j in range(last - 1, -1, -1):
            if not reach[j]:
                break
            block(cuts[j], cuts[j + 1], reach[j], True)
        failed = flags.failure() if flags is not None else None
        if failed:
            raise Blowup(failed, "forward layer 1")

    def _forward(self, xT, train: bool, out) -> None:
        """Output-layer pre-activations for ``xT`` (features, rows), written to ``out`` (K, rows)."""
        act = self.act_forward
        dropout = self.dropout if train else 0.0
        bn = self.bn
        i = 0
        try:
            layers = self.layers
            h = layers[0]
            reach = self.reach
            if reach is not None:  # block by block, each over the rows it meets (self.x)
                self._blocked_first_layer(reach)
            elif self.sample_major:
                start = self.start  # every row is 0 before input ``start``
                _dot(xT.T[:, start:], self.W1[start:], out=self.u1s)
            else:
                start = self.start
                _dot(self.W1T[:, start:], xT[start:], out=h.u)
            b1 = self.b1
            if self.shift is not None:  # the shifts' share of the bias
                np.dot(self.shift, self.W1s, out=self.b1_eff[:, 0])
                b1 = _add(self.b1_eff, b1, out=self.b1_eff)
            product = h.u if self.sample_major or reach is None else self.u1s.T
            _add(product, b1, out=h.u)
            prev = xT
            for i, h in enumerate(layers):
                if i:
                    h.forward_dot(prev, out=h.u)
                if bn:
                    self._bn_forward(i, h, train)
                act(h.v, h.f, h.cache)
                if dropout:
                    if not (self.freeze_masks and self._masks_drawn):
                        self.rng.random(out=h.rand, dtype=h.rand.dtype)
                        np.greater_equal(h.rand, dropout, out=h.mask)
                        np.multiply(h.mask, 1.0 / (1.0 - dropout), out=h.mask)
                    np.multiply(h.f, h.mask, out=h.a)
                prev = h.aug
            i += 1
            self.out_dot(prev, out=out)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"forward layer {i + 1}") from None
        if dropout:
            self._masks_drawn = True

    def forward(self, x, train: bool) -> np.ndarray:
        """Output-layer pre-activations for ``x`` (rows, features), shape (rows, K); every
        input is multiplied (the column blocks of the last :meth:`load` are dropped)."""
        self.reach, self.start = None, 0
        self._forward(x.T, train, self.out)
        return self.out.T

    def scores(self, xT, start: int | None = None) -> np.ndarray:
        """Eval-mode output-layer pre-activations for feature-major inputs ``xT`` (features,
        rows), shape (K, rows): a view of this workspace's buffer, overwritten by the next
        pass. ``start``: every row is 0 in the inputs before it, so the first layer's
        products begin there."""
        self.start = start or 0
        self._forward(xT, False, self.out)
        return self.out

    def _bn_forward(self, i, h, train):
        model = self.model
        if train:
            np.dot(h.u, self.mean_vec, out=h.mu)
            np.subtract(h.u, h.mu_c, out=h.xc)
            np.multiply(h.xc, h.xc, out=h.tmp)
            np.dot(h.tmp, self.mean_vec, out=h.var)
            np.add(h.var, BN_EPS, out=h.istd)
            np.sqrt(h.istd, out=h.istd)
            np.divide(1.0, h.istd, out=h.istd)
            np.multiply(h.xc, h.istd_c, out=h.xhat)
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
            np.subtract(h.u, h.rmean_c, out=h.xhat)
            np.multiply(h.xhat, h.istd_c, out=h.xhat)
        np.multiply(h.xhat, h.gamma_c, out=h.v)
        np.add(h.v, h.beta_c, out=h.v)

    # -- loss and backward -----------------------------------------------------------
    def loss_and_delta(self, t, want: bool):
        """For the last :meth:`forward`: ``delta = grad_scale * d mean-loss / d out`` against
        one-hot targets ``t`` (rows, K); returns the summed loss when ``want`` (else ``None``)."""
        loss = self.loss
        try:
            loss.fm_delta(self.out, np.ascontiguousarray(t.T) * self.scale, self.loss_ws, self.delta, self.scale)
            if want:
                return loss.fm_total(self.out, np.argmax(t, axis=1))
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, loss.stage) from None
        return None

    def backward(self, x) -> None:
        """Fill ``model.grads`` (times ``grad_scale``) from ``self.delta``; ``x`` as in forward."""
        self._backward(x.T, None)

    def _backward(self, xT, fused) -> None:
        """``model.grads`` from ``self.delta``; with ``fused`` (see :meth:`fuse_sgd`) the first
        layer's weights are updated in place instead and the rest of the update is left to
        the caller."""
        model, act, layers = self.model, self.act_backward, self.layers
        i = len(layers)
        try:
            top = layers[-1]
            self.out_grad_dot(self.deltaT, out=model.dWb[i])
            self.out_back_dot(self.delta, out=top.g)
            if self.tracing:  # the gradient flowing into the last hidden layer, before dropout and f'
                np.abs(top.g, out=self.abs_hidden)
                self.trace[3] = float(np.maximum.reduce(self.abs_hidden, axis=None)) / self._grad_scale
            bn = self.bn
            top_index = i
            for i in range(top_index - 1, -1, -1):
                h = layers[i]
                g = h.g
                if self.dropout:
                    np.multiply(g, h.mask, out=g)
                act(h.v, h.f, h.cache, g, g)
                if bn:
                    self._bn_backward(i, h)
                if i:
                    h.grad_dot(h.gT, out=model.dWb[i])
                    h.back_dot(g, out=layers[i - 1].g)
                else:
                    h.bias_grad_dot(out=model.db[0])
                    if fused is None:
                        reach = self.reach
                        if reach is None:
                            xT.dot(g.T, out=self.dW1)
                        else:  # block by block, over the rows it meets (0 where none)
                            cuts, dW1 = self.cuts, self.dW1
                            for j, rows in enumerate(reach):
                                lo, hi = cuts[j], cuts[j + 1]
                                if rows:
                                    xT[lo:hi, :rows].dot(g[:, :rows].T, out=dW1[lo:hi])
                                else:
                                    dW1[lo:hi].fill(0.0)
                        self.dW1c.fill(0.0)  # no product reaches the constant inputs' rows
                        if self.shift is not None:  # the shifts' share: s_j db_1
                            np.multiply(self.shift_col, model.db[0], out=self.shift_tmp)
                            _add(self.dW1s, self.shift_tmp, out=self.dW1s)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"backward layer {i + 1}") from None
        if fused is not None:
            kernel, update_w1, params, grads, wd_vec, wd_tmp = fused
            reach = self.reach
            lo = 0  # W_1's rows before this one meet no row of the batch
            kernel.clear_flags()
            if reach is None:
                update_w1()  # W_1 <- beta W_1 - x^T g^T, in place
            else:  # block by block, over the rows it meets
                cuts = self.cuts
                for j, rows in enumerate(reach):
                    if rows:
                        update_w1(cuts[j], cuts[j + 1], rows)
                    elif cuts[j + 1] > lo:
                        lo = cuts[j + 1]
            failed = kernel.failure()
            if failed:
                raise Blowup(failed, "update layer 1")
            try:
                if self.wd:  # rows no product reached, and the constant inputs': their decay
                    decay = 1.0 - self.wd * self._grad_scale
                    if lo:
                        np.multiply(self.W1[:lo], decay, out=self.W1[:lo])
                    np.multiply(self.W1c, decay, out=self.W1c)
                if self.shift is not None:  # the shifts' share of the gradient
                    np.multiply(self.shift_col, model.db[0], out=self.shift_tmp)
                    np.subtract(self.W1s, self.shift_tmp, out=self.W1s)
            except FloatingPointError as err:
                raise Blowup.from_fpe(err, "update layer 1") from None
            if wd_vec is not None:  # the other layers' weight decay
                try:
                    np.multiply(params, wd_vec, out=wd_tmp)
                    np.add(grads, wd_tmp, out=grads)
                except FloatingPointError as err:
                    raise Blowup.from_fpe(err, "backward weight decay") from None
        elif self.wd:
            try:
                np.multiply(model.params, self.wd_vec, out=self.wd_tmp)
                np.add(model.grads, self.wd_tmp, out=model.grads)
            except FloatingPointError as err:
                raise Blowup.from_fpe(err, "backward weight decay") from None

    def _bn_backward(self, i, h):
        # with dv = dL/dv: du = gamma * istd / m * (m dv - sum(dv) - xhat * sum(dv * xhat))
        model, ones = self.model, self.ones
        dv = h.g
        np.dot(dv, ones, out=model.dbeta[i])
        np.multiply(dv, h.xhat, out=h.tmp)
        np.dot(h.tmp, ones, out=model.dgamma[i])
        np.multiply(h.xhat, h.dgamma_c, out=h.tmp)
        np.multiply(dv, float(self.rows), out=dv)
        np.subtract(dv, h.tmp, out=dv)
        np.subtract(dv, h.dbeta_c, out=dv)
        np.multiply(model.gamma[i], h.istd, out=h.coef)
        np.multiply(h.coef, 1.0 / self.rows, out=h.coef)
        np.multiply(dv, h.coef_c, out=dv)

    # -- the training step -----------------------------------------------------------
    def train_step(self, optimizer, out=None) -> None:
        """One mini-batch from ``self.x`` / ``self.t``: forward, backward, update.

        The output-layer pre-activations go to ``out`` (K, rows) when given (the
        trainer keeps them to compute the epoch's running loss and accuracy at once).
        With ``tracing`` the step's magnitudes are left in ``self.trace``; a stage that
        was not reached (the step blew up before it) leaves ``None``.
        """
        if out is None:
            out = self.out
        fast = self._fast
        if fast is not None and fast[0] is optimizer and not self.tracing and not self.start:
            return self._fast_step(fast, out)
        tracing = self.tracing
        if tracing:
            tr = self.trace
            tr[0] = tr[1] = tr[2] = tr[3] = None
        self._forward(self.xT, True, out)
        if tracing:
            np.abs(out, out=self.abs_out)
            tr[0] = float(np.maximum.reduce(self.abs_out, axis=None))
        loss = self.loss
        try:
            loss.fm_delta_fast(out, self.t, self.loss_ws, self.delta, self.scale)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, loss.stage) from None
        fused = self.fused
        self._backward(self.xT, fused)
        model = self.model
        if tracing:
            np.abs(model.dW[-1], out=self.abs_w)
            tr[2] = float(np.maximum.reduce(self.abs_w, axis=None)) / self._grad_scale
        try:
            if fused is None:
                optimizer.update(model.params, model.grads)
            else:
                optimizer.update(fused[2], fused[3])
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"update layer {self._worst_layer()}") from None
        if tracing:
            np.abs(model.W[-1], out=self.abs_w)
            tr[1] = float(np.maximum.reduce(self.abs_w, axis=None))

    def _fast_step(self, fast, out) -> None:
        """:meth:`train_step` (no tracing) where :meth:`_fast_plan` applies: the same calls on
        the same buffers in the same order, so the same numbers, with less Python around them."""
        (
            _,
            update,
            x,
            W1,
            u1s,
            xT,
            W1T,
            sample_major,
            b1,
            u,
            a,
            cache,
            g,
            act,
            act_back,
            forward,
            backward,
            out_dot,
            top_aug,
            loss_delta,
            t,
            loss_ws,
            delta,
            deltaT,
            out_grad_dot,
            dWb_out,
            out_back_dot,
            top_g,
            bias_grad_dot,
            db1,
            kernel,
            update_w1,
            rest_p,
            rest_g,
            out_stage,
            top_stage,
        ) = fast
        reach = self.reach
        where = "forward layer 1"
        try:
            if reach is not None:  # block by block, each over the rows it meets (see set_blocks)
                self._blocked_first_layer(reach)
                _add(u if sample_major else u1s.T, b1, u)
            else:
                if sample_major:
                    _dot(x, W1, u1s)
                else:  # feature-major (see sample_major)
                    _dot(W1T, xT, u)
                _add(u, b1, u)
            act(u, a, cache)
            for dot, prev, ui, ai, ci, where in forward:  # noqa: B007 (``where`` names the stage for the handler)
                dot(prev, out=ui)
                act(ui, ai, ci)
            where = out_stage
            out_dot(top_aug, out=out)
            where = self.loss.stage
            loss_delta(out, t, loss_ws, delta, self.scale)
            where = top_stage
            out_grad_dot(deltaT, out=dWb_out)
            out_back_dot(delta, out=top_g)
            for ui, ai, ci, gi, grad_dot, gT, dWb, back_dot, g_below, where in backward:  # noqa: B007
                act_back(ui, ai, ci, gi, gi)
                grad_dot(gT, out=dWb)
                back_dot(gi, out=g_below)
            where = "backward layer 1"
            act_back(u, a, cache, g, g)
            bias_grad_dot(out=db1)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, where) from None
        kernel.clear_flags()
        if reach is None:
            update_w1()  # W_1 <- W_1 - x^T g^T, in place
        else:
            cuts = self.cuts
            for j, rows in enumerate(reach):
                if rows:
                    update_w1(cuts[j], cuts[j + 1], rows)
        failed = kernel.failure()
        if failed:
            raise Blowup(failed, "update layer 1")
        try:
            update(rest_p, rest_g)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"update layer {self._worst_layer()}") from None

    def _worst_layer(self) -> int:
        """1-based layer whose parameters went non-finite, else whose gradient is largest."""
        model = self.model
        for i, Wb in enumerate(model.Wb):
            if not np.isfinite(Wb).all():
                return i + 1
        with np.errstate(all="ignore"):
            sizes = [np.abs(dWb).max() for dWb in model.dWb]
        return int(np.argmax(sizes)) + 1

    # -- evaluation ----------------------------------------------------------------
    def evaluate(self, x, y):
        """``(summed loss, correct count)`` over the rows of ``x`` (labels ``y``) in eval mode."""
        self._forward(x.T, False, self.out)
        try:
            loss = self.loss.fm_total(self.out, y)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, self.loss.stage) from None
        return loss, self.count_correct(y)

    def count_correct(self, y) -> int:
        return count_correct(self.out, y)


def _back_product(W: np.ndarray, below: np.ndarray):
    """``back(g, out=below)``: ``below = W @ g``, the gradient flowing into the layer below.
    numpy writes a product only into a C-contiguous array: a layer stored sample-major
    (``below.T`` C-contiguous, the first) gets ``below^T = g^T @ W^T`` instead."""
    if below.flags.c_contiguous:
        return W.dot
    WT, below_t = W.T, below.T

    def back(g, out=None):
        _dot(g.T, WT, below_t)

    return back


class _Hidden:
    """Buffers of one hidden layer for ``rows`` samples, each (width, rows); ``aug`` is
    (width + 1, rows) with a last row of ones and ``a`` is its first ``width`` rows."""

    __slots__ = (
        "u",
        "v",
        "f",
        "a",
        "aug",
        "cache",
        "rand",
        "mask",
        "g",
        "xc",
        "xhat",
        "tmp",
        "mu",
        "var",
        "istd",
        "coef",
        "mu_c",
        "istd_c",
        "coef_c",
        "gamma_c",
        "beta_c",
        "dgamma_c",
        "dbeta_c",
        "rmean_c",
        "gT",
        "forward_dot",
        "grad_dot",
        "back_dot",
        "bias_grad_dot",
    )
