"""The learning rate at which one configuration starts to diverge, found in a fraction of a run.

Two measurements per configuration:

1. the sharpness ``λ_max`` of the loss at initialization (:func:`sharpness`): plain SGD on
   a quadratic is stable while ``lr · λ_max < 2`` (``2 + 2β`` with momentum ``β``), so
   ``limit / λ_max`` is where the first steps stop being stable;
2. short runs of the real trainer (``steps`` optimizer steps), bisected on ``lr`` around
   that point. Above ``limit / λ_max`` a network can still recover: the loss spikes, the
   first steps flatten the loss (the "catapult" of Lewkowycz et al. 2020) and training
   goes on; a little higher it cannot, and it overflows. Which factor above the limit a
   configuration tolerates depends on it (leaky-ReLU's slope, the widths, the batch
   size), so it is measured, not assumed.

Bisected both ways on 8 MNIST configurations, the edge of 10-epoch runs was that of their
first 300 steps within 10 %, and in the calibration studies half of the diverged trials
overflowed by step 8–12 and 206 of 215 within 60 steps (README, "Why training blows
up"), so short runs stop at ``STEPS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpsearch.errors import Diverged
from hpsearch.mlp._config import MLPConfig
from hpsearch.mlp._network import MLP
from hpsearch.mlp._sharpness import probe_rows, sharpness, stability_limit
from hpsearch.mlp._train import train

STEPS = 60  # optimizer steps of one short run
BISECTIONS = 3  # halvings of the (log) bracket once it holds the edge: it ends 19 % wide
WIDEN = 4.0  # factor by which the bracket grows while it does not yet hold the edge
MAX_FACTOR = 256.0  # the bracket stays within limit/λ_max divided or multiplied by this
PROBE = 256  # rows of the probe batch of the sharpness at initialization


@dataclass(frozen=True)
class EdgeEstimate:
    """What :func:`lr_edge` measured for one configuration.

    ``sharpness``: ``λ_max`` at initialization; ``limit``: the optimizer's stability limit
    of ``lr · λ_max`` (``None`` for adaptive optimizers, then nothing else is measured);
    ``lr_limit = limit / sharpness``; ``lr_edge``: the geometric middle of ``(low, high]``,
    the largest learning rate whose short run survived and the smallest that diverged
    (``high`` is ``inf`` if none diverged up to the bracket's end, ``low`` 0 if all did);
    ``runs``: short runs made; ``steps``: their length.
    """

    sharpness: float
    limit: float | None
    lr_limit: float | None
    lr_edge: float | None
    low: float | None
    high: float | None
    runs: int
    steps: int

    @property
    def factor(self) -> float | None:
        """How far above the quadratic limit the runs survive: ``lr_edge / lr_limit``."""
        if self.lr_edge is None or not self.lr_limit or not math.isfinite(self.lr_edge):
            return None
        return self.lr_edge / self.lr_limit


def short_run_diverges(config: MLPConfig, x, y, n_classes: int, lr: float, steps: int = STEPS) -> bool:
    """Whether ``steps`` optimizer steps of ``config`` at ``lr`` on ``(x, y)`` overflow (the
    rows are used in order; whole epochs over them until ``steps`` are reached)."""
    batch = min(config.batch_size, len(x))
    per_epoch = math.ceil(len(x) / batch)
    epochs = max(1, math.ceil(steps / per_epoch))
    rows = len(x) if epochs > 1 else min(len(x), steps * batch)
    empty = np.empty((0, x.shape[1]), x.dtype)
    try:
        train(
            config.replace(lr=lr, epochs=epochs),
            x[:rows],
            y[:rows],
            empty,
            np.empty(0, np.intp),
            n_classes=n_classes,
            train_metrics="none",
            explain=False,
        )
    except Diverged:
        return True
    return False


def lr_edge(
    config: MLPConfig,
    x,
    y,
    *,
    n_classes: int | None = None,
    rng: np.random.Generator,
    steps: int = STEPS,
    bisections: int = BISECTIONS,
    probe: int = PROBE,
) -> EdgeEstimate:
    """Measure ``λ_max`` at initialization and bisect ``lr`` with short runs around ``limit / λ_max``.

    ``x, y``: training rows (a random subset of them is used, drawn from ``rng``, as are the
    probe batch and the initialization). ``config.lr`` is ignored.
    """
    if not isinstance(config, MLPConfig):
        config = MLPConfig.from_dict(config)
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.intp)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    init_rng, probe_rng, order_rng = rng.spawn(3)
    model = MLP(config, x.shape[1], n_classes, rng=init_rng)
    idx = probe_rows(len(x), probe_rng, probe)
    lam = sharpness(model, x[idx], y[idx], rng=probe_rng).value
    limit = stability_limit(config)
    if limit is None or not lam > 0:
        return EdgeEstimate(lam, limit, None, None, None, None, 0, steps)
    lr_limit = limit / lam
    need = min(len(x), steps * min(config.batch_size, len(x)))
    rows = order_rng.permutation(len(x))[:need]
    xs, ys = x[rows], y[rows]
    runs = 0

    def diverges(lr: float) -> bool:
        nonlocal runs
        runs += 1
        return short_run_diverges(config, xs, ys, n_classes, lr, steps)

    # bracket (low, high]: low survived, high diverged; start at the quadratic limit
    low = high = None
    lr = lr_limit * 2.0
    while high is None and lr <= lr_limit * MAX_FACTOR:
        if diverges(lr):
            high = lr
        else:
            low, lr = lr, lr * WIDEN
    if low is None:
        lr = lr_limit / 2.0
        while low is None and lr >= lr_limit / MAX_FACTOR:
            if diverges(lr):
                high, lr = lr, lr / WIDEN
            else:
                low = lr
    if low is None or high is None:  # no edge inside the bracket
        return EdgeEstimate(lam, limit, lr_limit, None, low or 0.0, high or math.inf, runs, steps)
    for _ in range(bisections):
        mid = math.sqrt(low * high)
        if diverges(mid):
            high = mid
        else:
            low = mid
    return EdgeEstimate(lam, limit, lr_limit, math.sqrt(low * high), low, high, runs, steps)
