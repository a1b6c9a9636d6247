"""Hidden-layer activations: each forward line sits next to its derivative.

An activation writes ``out = f(u)`` into a preallocated buffer and may leave in
``cache`` (one scratch buffer of the same shape) what its backward needs; the
backward writes ``out = da * f'(u)``. Nothing is allocated per call.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit  # a ufunc: sigmoid without overflow for large |u|

_ZERO = np.zeros((), np.float32)  # compares against any float dtype without a conversion per call


class Activation:
    """``f`` applied elementwise; subclasses set ``name`` and fill in the two methods."""

    name = ""
    zero_gradient = False  # True when f' is 0 almost everywhere (nothing upstream learns)

    @classmethod
    def from_config(cls, config) -> Activation:
        return cls()

    def forward(self, u, out, cache):
        raise NotImplementedError

    def backward(self, u, a, cache, da, out):
        """``out = da * f'(u)``; ``a`` is ``f(u)`` and ``cache`` what forward left."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, u, out, cache):
        expit(u, out=out)

    def backward(self, u, a, cache, da, out):
        np.subtract(1.0, a, out=cache)  # f' = f (1 - f)
        np.multiply(cache, a, out=cache)
        np.multiply(da, cache, out=out)


class Tanh(Activation):
    name = "tanh"

    def forward(self, u, out, cache):
        np.tanh(u, out=out)

    def backward(self, u, a, cache, da, out):
        np.multiply(a, a, out=cache)  # f' = 1 - f^2
        np.subtract(1.0, cache, out=cache)
        np.multiply(da, cache, out=out)


class ReLU(Activation):
    name = "relu"

    def forward(self, u, out, cache):
        np.greater(u, _ZERO, out=cache)  # the 0/1 mask doubles as f'
        np.multiply(u, cache, out=out)

    def backward(self, u, a, cache, da, out):
        np.multiply(da, cache, out=out)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        self.alpha = float(alpha)

    @classmethod
    def from_config(cls, config) -> LeakyReLU:
        return cls(config.alpha)

    def forward(self, u, out, cache):
        # slope = 1 where u > 0 else alpha; it is both the multiplier and f'
        np.greater(u, _ZERO, out=cache)
        np.multiply(cache, 1.0 - self.alpha, out=cache)
        np.add(cache, self.alpha, out=cache)
        np.multiply(u, cache, out=out)

    def backward(self, u, a, cache, da, out):
        np.multiply(da, cache, out=out)

    def __repr__(self) -> str:
        return f"leaky_relu({self.alpha:.3g})"


class Identity(Activation):
    name = "identity"

    def forward(self, u, out, cache):
        np.copyto(out, u)

    def backward(self, u, a, cache, da, out):
        np.copyto(out, da)


class Softplus(Activation):
    name = "softplus"

    def forward(self, u, out, cache):
        np.logaddexp(u, 0.0, out=out)  # log(1 + e^u) without overflow

    def backward(self, u, a, cache, da, out):
        expit(u, out=cache)  # f' = sigmoid(u)
        np.multiply(da, cache, out=out)


class Softsign(Activation):
    name = "softsign"

    def forward(self, u, out, cache):
        np.abs(u, out=cache)
        np.add(cache, 1.0, out=cache)  # cache = 1 + |u|, kept for backward
        np.divide(u, cache, out=out)

    def backward(self, u, a, cache, da, out):
        np.divide(da, cache, out=out)  # f' = 1 / (1 + |u|)^2
        np.divide(out, cache, out=out)


class Step(Activation):
    name = "step"
    zero_gradient = True

    def forward(self, u, out, cache):
        np.greater(u, _ZERO, out=out)

    def backward(self, u, a, cache, da, out):
        out.fill(0.0)  # f' = 0 almost everywhere: layers below the output do not learn


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Identity, Softplus, Softsign, Step)
}
