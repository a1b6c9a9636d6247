"""How a training run ended: it learned, or which way it failed.

The core names the failures it can see in a run's numbers; the study layer records
them (``hpsearch.vocabulary.OUTCOMES``). Overflow and NaN are raised as
:class:`hpsearch.errors.Diverged` by the trainer; a dead hidden layer as
:class:`hpsearch.errors.Dead`; the rest is read off the validation curve by
:func:`classify` once the run is over.

Definitions (the README states them too):

- **chance** is the majority-class rate of the validation split: what a network that
  outputs one constant answer scores at best.
- a run **learned** (``ok``) when its last validation accuracy is above
  ``chance + LEARNED_MARGIN * (1 - chance)`` (a tenth of the way from chance to perfect:
  0.19 for 10 balanced classes, 0.55 for 2);
- otherwise it **collapsed** if it had been above that line at some epoch, or its
  training loss had spiked (an epoch's mean loss above ``SPIKE`` times ``ln K``, the loss
  of a uniform guess); else it **stalled** (never left chance).
"""

from __future__ import annotations

import math

import numpy as np

OK = "ok"
COLLAPSED = "collapsed"
STALLED = "stalled"
DEAD = "dead"
#: the failures this module names (overflow and nan are the trainer's Diverged reasons)
KINDS = (COLLAPSED, DEAD, STALLED)

LEARNED_MARGIN = 0.1  # of the way from chance to perfect accuracy
SPIKE = 3.0  # an epoch's mean training loss above this many times ln K is a spike


def chance_level(y_val: np.ndarray, n_classes: int | None = None) -> float:
    """The majority-class rate of ``y_val``: the accuracy of a constant answer."""
    y = np.asarray(y_val)
    if y.size == 0:
        return 1.0 / n_classes if n_classes else float("nan")
    return float(np.bincount(y.astype(np.int64)).max() / y.size)


def learned_line(chance: float) -> float:
    """The validation accuracy a run must end above to count as having learned."""
    return chance + LEARNED_MARGIN * (1.0 - chance)


def classify(epochs: list[dict], chance: float, n_classes: int | None = None, loss: str = "cross_entropy") -> str:
    """``ok``, ``collapsed`` or ``stalled`` for a run's epochs (dicts with ``val_accuracy`` and
    ``train_loss``; missing or non-finite values count as not learned). No epoch: ``stalled``."""
    line = learned_line(chance)
    acc = [_finite(e.get("val_accuracy")) for e in epochs]
    if acc and acc[-1] is not None and acc[-1] > line:
        return OK
    reached = any(a is not None and a > line for a in acc)
    return COLLAPSED if reached or _spiked(epochs, n_classes, loss) else STALLED


def _spiked(epochs: list[dict], n_classes: int | None, loss: str) -> bool:
    if loss != "cross_entropy" or not n_classes or n_classes < 2:
        return False  # only the cross-entropy of a uniform guess has a known scale (ln K)
    limit = SPIKE * math.log(n_classes)
    losses = [_finite(e.get("train_loss")) for e in epochs]
    return any(v is not None and v > limit for v in losses)


def _finite(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


class DeadWatch:
    """Which hidden layer, if any, passes no gradient and outputs one value on every row seen.

    Such a layer is *dead*: its activation's derivative is exactly 0 for every unit and
    every input (a ReLU layer with every pre-activation <= 0), so no gradient reaches it
    or any layer below, and its output — the same vector for every input — leaves the
    layers above a constant to learn from. Fed the eval-mode workspaces of a pass over a
    data set chunk by chunk (:meth:`see`); costs a few elementwise passes over the hidden
    activations, nothing next to the products that made them.
    """

    def __init__(self, model):
        self.model = model
        n = len(model.sizes) - 2
        self.dead = [True] * n
        self.ref: list[np.ndarray | None] = [None] * n
        self._ones: dict = {}
        self.rows = 0

    def see(self, ws) -> None:
        act = self.model.activation
        for i, h in enumerate(ws.layers):
            if not self.dead[i]:
                continue
            f = h.f
            buf = self._ones.get(f.shape)
            if buf is None:
                buf = self._ones[f.shape] = (np.ones(f.shape, f.dtype), np.empty(f.shape, f.dtype))
            ones, grad = buf
            act.backward(h.v, f, h.cache, ones, grad)  # f'(u), unit by unit
            if grad.any():
                self.dead[i] = False
                continue
            if self.ref[i] is None:
                self.ref[i] = f[:, 0].copy()
            if not (f == self.ref[i][:, None]).all():
                self.dead[i] = False
        self.rows += ws.rows

    def first_dead(self) -> int | None:
        """0-based index of the lowest dead hidden layer, or ``None``."""
        if not self.rows:
            return None
        return next((i for i, d in enumerate(self.dead) if d), None)
