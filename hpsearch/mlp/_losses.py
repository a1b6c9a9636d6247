"""Output layer + loss pairs.

``forward_backward(u, t, ws, delta, scale, want)`` takes the output layer's
pre-activation ``u`` (rows, K) and one-hot targets ``t``; it writes ``scale``
times the gradient of the *summed* loss with respect to ``u`` into ``delta``
(the caller passes ``1 / rows`` for the mean, times any gradient scale) and, when
``want`` is true, returns the summed loss over the rows (else ``None``).
Softmax and cross-entropy are fused: the gradient is ``softmax(u) - t``.
"""

from __future__ import annotations

import math

import numpy as np


def _finite_or_raise(value: float) -> float:
    # numpy reductions through BLAS (vdot) do not raise under errstate; keep one rule
    if not math.isfinite(value):
        raise FloatingPointError("invalid value encountered in loss" if value != value
                                 else "overflow encountered in loss")
    return value


class Loss:
    name = ""
    stage = "loss"  # where a blow-up in this stage is reported

    def workspace(self, rows: int, k: int, dtype) -> dict:
        return {}

    def forward_backward(self, u, t, ws, delta, scale, want):
        raise NotImplementedError

    def output(self, u, ws, out):
        """The network's output for scores ``u`` (probabilities for cross-entropy)."""
        raise NotImplementedError


class CrossEntropy(Loss):
    """Softmax output, ``-log p[y]`` averaged over the batch."""

    name = "cross_entropy"
    stage = "softmax"

    def workspace(self, rows, k, dtype):
        return {"mx": np.empty((rows, 1), dtype), "s": np.empty((rows, 1), dtype),
                "z": np.empty((rows, k), dtype)}

    def forward_backward(self, u, t, ws, delta, scale, want):
        z, s = ws["z"], ws["s"]
        # shift by the row max: exp never overflows, and log(sum exp z) >= 0 never hits log(0)
        np.maximum.reduce(u, axis=1, keepdims=True, out=ws["mx"])
        np.subtract(u, ws["mx"], out=z)
        zt = float(np.vdot(z, t)) if want else 0.0
        np.exp(z, out=z)
        np.add.reduce(z, axis=1, keepdims=True, out=s)
        np.divide(z, s, out=delta)
        np.subtract(delta, t, out=delta)
        np.multiply(delta, scale, out=delta)
        if not want:
            return None
        np.log(s, out=s)
        return _finite_or_raise(float(np.add.reduce(s, axis=None)) - zt)

    def output(self, u, ws, out):
        np.maximum.reduce(u, axis=1, keepdims=True, out=ws["mx"])
        np.subtract(u, ws["mx"], out=out)
        np.exp(out, out=out)
        np.add.reduce(out, axis=1, keepdims=True, out=ws["s"])
        np.divide(out, ws["s"], out=out)


class MeanSquaredError(Loss):
    """Identity output, ``0.5 * sum_k (u_k - t_k)^2`` averaged over the batch."""

    name = "mean_squared_error"

    def forward_backward(self, u, t, ws, delta, scale, want):
        np.subtract(u, t, out=delta)
        value = _finite_or_raise(0.5 * float(np.vdot(delta, delta))) if want else None
        np.multiply(delta, scale, out=delta)
        return value

    def output(self, u, ws, out):
        np.copyto(out, u)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (CrossEntropy, MeanSquaredError)}
