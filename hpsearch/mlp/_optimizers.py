"""Optimizers: one ``update(params, grads)`` that changes ``params`` in place.

``params`` and ``grads`` are the flat vectors holding every parameter of the
network, so one update is a handful of ufunc calls whatever the depth.
``grads`` is read, never changed. State is created lazily on the first update.

``prescale``: the trainer may hand ``update`` gradients already multiplied by this
factor, folded for free into the output layer's delta. Plain SGD uses the learning
rate, so its whole update is one subtraction; the others use 1.

``fusable``: the update is ``params -= grads`` and nothing else (no state), so a
trainer may apply it to some parameters inside the product that computes their
gradient (see ``Workspace.fuse_sgd``). Only plain SGD.

``state()`` / ``load_state(state)``: the update count ``t`` and the state arrays, to
snapshot and restore a run (the divergence replay).
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    name = ""
    prescale = 1.0
    fusable = False
    state_names: tuple[str, ...] = ()  # the state arrays, created by the first update
    coasts = False  # True when the state keeps moving the parameters after their gradient is 0

    def __init__(self, lr: float):
        self.lr = float(lr)
        self.t = 0  # number of updates done

    @classmethod
    def from_config(cls, config) -> Optimizer:
        return cls(config.lr)

    def update(self, params: np.ndarray, grads: np.ndarray) -> None:
        raise NotImplementedError

    def state(self) -> dict:
        """``{"t": updates done, <name>: array for each of state_names}``: the live arrays
        (copy them to keep them), none before the first update."""
        arrays = self.__dict__
        return {"t": self.t, **{k: arrays[k] for k in self.state_names if k in arrays}}

    def load_state(self, state: dict) -> None:
        """Continue from ``state`` (as :meth:`state` returned it; the arrays are copied).
        At ``t == 0`` the next update creates the state afresh."""
        self.t = int(state["t"])
        for k in self.state_names:
            if k in state:
                mine = self.__dict__.get(k)
                if mine is not None and mine.shape == state[k].shape:
                    np.copyto(mine, state[k])
                else:
                    self.__dict__[k] = np.array(state[k])
        if self.t and self.state_names and "_tmp" not in self.__dict__:
            self._tmp = np.empty_like(state[self.state_names[0]])

    def __repr__(self) -> str:
        return f"{self.name} lr={self.lr:.3g}"


class SGD(Optimizer):
    """``p -= lr * g``; ``grads`` arrive as ``lr * g`` (see ``prescale``)."""

    name = "sgd"
    fusable = True

    def __init__(self, lr: float):
        super().__init__(lr)
        self.prescale = self.lr

    def update(self, params, grads):
        self.t += 1
        np.subtract(params, grads, out=params)


class Momentum(Optimizer):
    """``v = momentum * v - lr * g; p += v``."""

    name = "momentum"
    state_names = ("v",)
    coasts = True

    def __init__(self, lr: float, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = float(momentum)

    @classmethod
    def from_config(cls, config):
        return cls(config.lr, config.momentum)

    def update(self, params, grads):
        if self.t == 0:
            self.v = np.zeros_like(params)
            self._tmp = np.empty_like(params)
        self.t += 1
        np.multiply(self.v, self.momentum, out=self.v)
        np.multiply(grads, self.lr, out=self._tmp)
        np.subtract(self.v, self._tmp, out=self.v)
        np.add(params, self.v, out=params)


class AdaGrad(Optimizer):
    """``h += g^2; p -= lr * g / (sqrt(h) + eps)``."""

    name = "adagrad"
    state_names = ("h",)

    def __init__(self, lr: float, eps: float = 1e-8):
        super().__init__(lr)
        self.eps = float(eps)

    @classmethod
    def from_config(cls, config):
        return cls(config.lr, config.eps)

    def update(self, params, grads):
        if self.t == 0:
            self.h = np.zeros_like(params)
            self._tmp = np.empty_like(params)
        self.t += 1
        tmp = self._tmp
        np.multiply(grads, grads, out=tmp)
        np.add(self.h, tmp, out=self.h)
        np.sqrt(self.h, out=tmp)
        np.add(tmp, self.eps, out=tmp)
        np.divide(grads, tmp, out=tmp)
        np.multiply(tmp, self.lr, out=tmp)
        np.subtract(params, tmp, out=params)


class RMSprop(Optimizer):
    """``h = rho * h + (1 - rho) * g^2; p -= lr * g / (sqrt(h) + eps)``."""

    name = "rmsprop"
    state_names = ("h",)

    def __init__(self, lr: float, rho: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        self.rho = float(rho)
        self.eps = float(eps)

    @classmethod
    def from_config(cls, config):
        return cls(config.lr, config.rho, config.eps)

    def update(self, params, grads):
        if self.t == 0:
            self.h = np.zeros_like(params)
            self._tmp = np.empty_like(params)
        self.t += 1
        tmp = self._tmp
        np.multiply(grads, grads, out=tmp)
        np.multiply(tmp, 1.0 - self.rho, out=tmp)
        np.multiply(self.h, self.rho, out=self.h)
        np.add(self.h, tmp, out=self.h)
        np.sqrt(self.h, out=tmp)
        np.add(tmp, self.eps, out=tmp)
        np.divide(grads, tmp, out=tmp)
        np.multiply(tmp, self.lr, out=tmp)
        np.subtract(params, tmp, out=params)


class Adam(Optimizer):
    """Kingma & Ba: bias-corrected moments, ``p -= lr * m_hat / (sqrt(v_hat) + eps)``."""

    name = "adam"
    state_names = ("m", "v")
    coasts = True

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.eps = float(eps)

    @classmethod
    def from_config(cls, config):
        return cls(config.lr, config.beta1, config.beta2, config.eps)

    def update(self, params, grads):
        if self.t == 0:
            self.m = np.zeros_like(params)
            self.v = np.zeros_like(params)
            self._tmp = np.empty_like(params)
        self.t += 1
        b1, b2, tmp, m, v = self.beta1, self.beta2, self._tmp, self.m, self.v
        np.subtract(grads, m, out=tmp)  # m += (1 - b1) (g - m)
        np.multiply(tmp, 1.0 - b1, out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(grads, grads, out=tmp)  # v += (1 - b2) (g^2 - v)
        np.subtract(tmp, v, out=tmp)
        np.multiply(tmp, 1.0 - b2, out=tmp)
        np.add(v, tmp, out=v)
        # sqrt(v_hat) + eps = (sqrt(v) + eps * sqrt(1 - b2^t)) / sqrt(1 - b2^t)
        c2 = (1.0 - b2**self.t) ** 0.5
        np.sqrt(v, out=tmp)
        np.add(tmp, self.eps * c2, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, self.lr * c2 / (1.0 - b1**self.t), out=tmp)
        np.subtract(params, tmp, out=params)

    def __repr__(self) -> str:
        return f"adam lr={self.lr:.3g}"


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Momentum, AdaGrad, RMSprop, Adam)}
