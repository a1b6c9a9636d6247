"""Output layer + loss pairs.

The training loop works feature-major (one column per sample, see ``_workspace``):
``fm_delta(o, ts, ws, delta, scale)`` writes ``scale`` times the gradient of the
*summed* loss with respect to the outputs ``o`` (K, rows) into ``delta``, given
one-hot targets ``ts`` already multiplied by ``scale`` (the caller passes ``1 / rows``
for the mean, times any gradient scale): ``scale * softmax(o) - ts`` for
cross-entropy (softmax and cross-entropy fused), ``scale * o - ts`` for MSE.
``fm_workspace(rows, K, dtype)`` holds its buffers. ``fm_total(o, y)`` is the summed
loss of outputs ``o`` (..., K, rows) against labels ``y`` (..., rows), computed once
per chunk or per epoch (it allocates). ``output(u, ws, out)`` turns row-major scores
into the network's outputs (``predict_proba``), with buffers from ``workspace``.
"""

from __future__ import annotations

import math

import numpy as np


def _finite_or_raise(value: float) -> float:
    # numpy reductions through BLAS (vdot) do not raise under errstate; keep one rule
    if not math.isfinite(value):
        raise FloatingPointError(
            "invalid value encountered in loss" if value != value else "overflow encountered in loss"
        )
    return value


class Loss:
    name = ""
    stage = "loss"  # where a blow-up in this stage is reported

    def workspace(self, rows: int, k: int, dtype) -> dict:
        return {}

    def output(self, u, ws, out):
        """The network's output for scores ``u`` (probabilities for cross-entropy)."""
        raise NotImplementedError

    def fm_workspace(self, rows: int, k: int, dtype) -> dict:
        return {}

    def fm_delta(self, o, ts, ws, delta, scale):
        raise NotImplementedError

    def fm_delta_fast(self, o, ts, ws, delta, scale):
        """:meth:`fm_delta` for callers under ``np.errstate(over="raise")`` (the trainer)."""
        self.fm_delta(o, ts, ws, delta, scale)

    def fm_total(self, o, y) -> float:
        raise NotImplementedError


class CrossEntropy(Loss):
    """Softmax output, ``-log p[y]`` averaged over the batch."""

    name = "cross_entropy"
    stage = "softmax"

    def workspace(self, rows, k, dtype):
        return {"mx": np.empty((rows, 1), dtype), "s": np.empty((rows, 1), dtype)}

    def fm_workspace(self, rows, k, dtype):
        dtype = np.dtype(dtype)
        return {
            "mx": np.empty(rows, dtype),
            "s": np.empty(rows, dtype),
            "z": np.empty((k, rows), dtype),
            "col_sum": np.ones(k, dtype).dot,  # column sums as a matrix-vector product
            # below this a column's sum of exp(o) has lost precision (its terms underflow)
            "tiny": float(2.0 ** (np.finfo(dtype).minexp // 2)),
        }

    def fm_delta_fast(self, o, ts, ws, delta, scale):
        # softmax without the shift by the column max, which costs two passes; it is the
        # same to rounding unless exp(o) overflows (raises under the trainer's errstate)
        # or a whole column underflows: then the shifted form
        z, s = ws["z"], ws["s"]
        try:
            np.exp(o, out=z)
            ws["col_sum"](z, out=s)
            if np.minimum.reduce(s) < ws["tiny"]:
                raise FloatingPointError("underflow")
        except FloatingPointError:
            return self.fm_delta(o, ts, ws, delta, scale)
        np.divide(scale, s, out=s)
        np.multiply(z, s, out=delta)
        np.subtract(delta, ts, out=delta)

    def fm_delta(self, o, ts, ws, delta, scale):
        z, s, mx = ws["z"], ws["s"], ws["mx"]
        np.maximum.reduce(o, axis=0, out=mx)  # column max: exp never overflows
        np.subtract(o, mx, out=z)
        np.exp(z, out=z)
        np.add.reduce(z, axis=0, out=s)  # >= 1
        np.divide(scale, s, out=s)
        np.multiply(z, s, out=delta)
        np.subtract(delta, ts, out=delta)

    def fm_total(self, o, y):
        z = o - np.maximum.reduce(o, axis=-2, keepdims=True)
        picked = np.take_along_axis(z, y[..., None, :], axis=-2)
        np.exp(z, out=z)
        lse = np.log(np.add.reduce(z, axis=-2))
        return _finite_or_raise(
            float(np.add.reduce(lse, axis=None, dtype=np.float64))
            - float(np.add.reduce(picked, axis=None, dtype=np.float64))
        )

    def output(self, u, ws, out):
        np.maximum.reduce(u, axis=1, keepdims=True, out=ws["mx"])
        np.subtract(u, ws["mx"], out=out)
        np.exp(out, out=out)
        np.add.reduce(out, axis=1, keepdims=True, out=ws["s"])
        np.divide(out, ws["s"], out=out)


class MeanSquaredError(Loss):
    """Identity output, ``0.5 * sum_k (u_k - t_k)^2`` averaged over the batch."""

    name = "mean_squared_error"

    def output(self, u, ws, out):
        np.copyto(out, u)

    def fm_delta(self, o, ts, ws, delta, scale):
        np.multiply(o, scale, out=delta)
        np.subtract(delta, ts, out=delta)

    def fm_total(self, o, y):
        d = o.copy()
        picked = np.take_along_axis(d, y[..., None, :], axis=-2)
        np.put_along_axis(d, y[..., None, :], picked - 1, axis=-2)
        return _finite_or_raise(0.5 * float(np.vdot(d, d)))


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (CrossEntropy, MeanSquaredError)}
