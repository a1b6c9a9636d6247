"""Backprop against central differences, in float64."""

from __future__ import annotations

import numpy as np

from hpsearch.mlp._config import MLPConfig
from hpsearch.mlp._network import MLP
from hpsearch.mlp._workspace import Workspace, one_hot

FLOOR = 1e-3  # blocks with a tiny gradient are measured against this share of the whole


def gradient_check(
    config: MLPConfig, x, y, *, n_classes: int | None = None, eps: float = 1e-6, model: MLP | None = None
) -> float:
    """Max relative error between the backprop gradient and central differences.

    The objective is the training loss on ``(x, y)`` as one batch (train mode: batch
    statistics for batch norm, dropout with masks drawn once and then frozen) plus
    ``weight_decay / 2 * sum(W**2)``. For every parameter block (each ``W``, ``b``,
    ``gamma``, ``beta``) the error is ``|g - n| / (|g| + |n|)`` with Euclidean norms;
    the denominator is at least ``FLOOR`` times that of the whole gradient, so a block
    whose true gradient is zero (a bias before batch norm) is not scored on noise.
    Every computation is float64, whatever ``config.dtype`` says.
    """
    if not isinstance(config, MLPConfig):
        config = MLPConfig.from_dict(config)
    config = config.replace(dtype="float64")
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.intp)
    k = int(y.max()) + 1 if n_classes is None else n_classes
    init_rng, dropout_rng = np.random.default_rng(config.seed).spawn(2)
    if model is None:
        model = MLP(config, x.shape[1], k, rng=init_rng)
    ws = Workspace(model, len(x), train=True, rng=dropout_rng)
    ws.freeze_masks = True
    t = one_hot(y, k, np.float64)
    params, weights, wd = model.params, model.weight_mask, config.weight_decay

    def objective() -> float:
        ws.forward(x, True)
        data = ws.loss_and_delta(t, True) / len(x)
        return data + 0.5 * wd * float(params @ (weights * params))

    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        objective()
        ws.backward(x)
        analytic = model.grads.copy()
        numeric = np.empty_like(analytic)
        for j in range(params.size):
            keep = params[j]
            params[j] = keep + eps
            up = objective()
            params[j] = keep - eps
            down = objective()
            params[j] = keep
            numeric[j] = (up - down) / (2 * eps)

    def norm(a):
        return float(np.linalg.norm(a))

    whole = norm(analytic) + norm(numeric)
    if whole == 0.0:
        return 0.0

    def blocks(flat):
        _, W, b, gamma, beta = model.carve(flat)
        return [*W, *b, *gamma, *beta]

    worst = 0.0
    for a, n in zip(blocks(analytic), blocks(numeric)):
        worst = max(worst, norm(a - n) / max(norm(a) + norm(n), FLOOR * whole))
    return worst
