"""The training loop: mini-batch epochs, metrics, divergence detection, best epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hpsearch._registry import lookup
from hpsearch.errors import DataError, Diverged
from hpsearch.mlp._config import MLPConfig
from hpsearch.mlp._initializers import SYMMETRIC
from hpsearch.mlp._layers import EVAL_ROWS, MLP, Blowup, Workspace, one_hot
from hpsearch.mlp._optimizers import OPTIMIZERS

TRACE_COLUMNS = ("epoch", "step", "max_abs_preact_out", "max_abs_w_out",
                 "max_abs_grad_w_out", "max_abs_grad_hidden")
TRACE_STEPS = 32  # steps kept in the divergence trace
METRICS = {"val_accuracy": "max", "val_loss": "min"}
TRAIN_METRICS = ("running", "full", "none")
_INF = math.inf


@dataclass
class History:
    """What one training run did. ``epochs`` holds one dict per epoch with keys
    ``epoch, train_loss, train_accuracy, val_loss, val_accuracy, seconds``
    (train values are ``None`` with ``train_metrics="none"``)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    steps: int = 0
    seconds: float = 0.0
    model: MLP | None = None
    notes: list[str] = field(default_factory=list)
    metric: str = "val_accuracy"


def _check_xy(x, y, name: str, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 2:
        raise DataError(f"x_{name} must be a 2-D array (samples, features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"x_{name} must be finite, got NaN or inf in {np.count_nonzero(~np.isfinite(x))} values")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"y_{name} must be 1-D with one label per row of x_{name} ({len(x)}), "
                        f"got shape {y.shape}")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        whole = np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all()
        if not whole:  # 3.0 is a label, 0.5 or nan is not
            raise DataError(f"y_{name} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.intp)
    if len(y) and y.min() < 0:
        raise DataError(f"y_{name} labels must be >= 0, got {int(y.min())}")
    return x, y


def _notes(config: MLPConfig, model: MLP) -> list[str]:
    notes = []
    if model.activation.zero_gradient:
        notes.append(f"activation {config.activation!r} has zero gradient: the hidden layers do not learn")
    if config.weight_init in SYMMETRIC:
        notes.append(f"weight_init {config.weight_init!r} gives every unit of a layer the same "
                     "weights: the hidden units stay identical")
    return notes


def train(config: MLPConfig, x_train, y_train, x_val, y_val, *,
          on_epoch: Callable[[int, dict], None] | None = None,
          metric: str = "val_accuracy", keep_best: bool = False,
          train_metrics: str = "running", n_classes: int | None = None) -> History:
    """Train an MLP on ``(x_train, y_train)``, validating on ``(x_val, y_val)`` every epoch.

    ``on_epoch(epoch, metrics)`` runs after every epoch (1-based) with ``train_loss,
    train_accuracy, val_loss, val_accuracy``; whatever it raises propagates unchanged.
    ``train_metrics`` is ``"running"`` (mean over the epoch's mini-batches, from the
    forward passes already done), ``"full"`` (an extra pass in eval mode) or ``"none"``.
    Overflow or NaN anywhere raises :class:`hpsearch.errors.Diverged`.
    """
    if not isinstance(config, MLPConfig):
        config = MLPConfig.from_dict(config)
    lookup(METRICS, metric, "metric")
    lookup({m: m for m in TRAIN_METRICS}, train_metrics, "train_metrics mode")
    dtype = np.dtype(config.dtype)
    x_train, y_train = _check_xy(x_train, y_train, "train", dtype)
    x_val, y_val = _check_xy(x_val, y_val, "val", dtype)
    if len(x_train) == 0:
        raise DataError("x_train is empty")
    if x_val.shape[1] != x_train.shape[1]:
        raise DataError(f"x_val has {x_val.shape[1]} features, x_train {x_train.shape[1]}")
    k_seen = int(max(y_train.max(), y_val.max() if len(y_val) else 0)) + 1
    if n_classes is None:
        n_classes = k_seen
    elif n_classes < k_seen:
        raise DataError(f"n_classes must be > every label (max label {k_seen - 1}), got {n_classes}")
    if n_classes < 2:
        raise DataError(f"training needs at least 2 classes, got {n_classes}")

    started = time.perf_counter()
    init_rng, shuffle_rng, dropout_rng = np.random.default_rng(config.seed).spawn(3)
    model = MLP(config, x_train.shape[1], n_classes, rng=init_rng)
    optimizer = lookup(OPTIMIZERS, config.optimizer, "optimizer").from_config(config)
    history = History(model=model, notes=_notes(config, model), metric=metric)

    n, batch = len(x_train), min(config.batch_size, len(x_train))
    t_train = one_hot(y_train, n_classes, dtype)
    t_val = one_hot(y_val, n_classes, dtype)
    ws_full = Workspace(model, batch, train=True, rng=dropout_rng)
    ws_full.grad_scale = optimizer.prescale
    ws_last = ws_full.resized(n - (n - 1) // batch * batch)
    eval_rows = max(len(x_val), n if train_metrics == "full" else 0, 1)
    eval_ws = Workspace(model, min(EVAL_ROWS, eval_rows), train=False)
    running = train_metrics == "running"
    maximize = METRICS[metric] == "max"
    best_state = None
    trace = [None] * TRACE_STEPS
    step = 0
    in_step = False
    errstate = dict(over="raise", invalid="raise", divide="raise", under="ignore")

    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        loss_sum, correct = 0.0, 0
        try:
            with np.errstate(**errstate):
                perm = shuffle_rng.permutation(n)
                for start in range(0, n, batch):
                    idx = perm[start:start + batch]
                    ws = ws_full if len(idx) == batch else ws_last
                    ws.load(x_train, t_train, y_train, idx, running)
                    step += 1
                    in_step = True
                    l, c = ws.train_step(optimizer, running)
                    in_step = False
                    if running:
                        loss_sum += l
                        correct += c
                    pre, w, gw, gh = ws.trace
                    trace[step % TRACE_STEPS] = (epoch, step, pre, w, gw, gh)
                    if not (pre + w + gw + gh < _INF):  # a nan fails this too
                        raise Blowup("nan" if math.isnan(pre + w + gw + gh) else "overflow",
                                     _first_bad_stage(pre, w, gw, gh, len(model.W)))
                if running:
                    train_loss, train_acc = float(loss_sum) / n, int(correct) / n
                elif train_metrics == "full":
                    train_loss, train_acc = _evaluate(eval_ws, x_train, t_train, y_train, "train")
                else:
                    train_loss = train_acc = None
                val_loss, val_acc = _evaluate(eval_ws, x_val, t_val, y_val, "validation")
        except Blowup as b:
            if in_step:  # the failing step: the magnitudes it reached before blowing up
                trace[step % TRACE_STEPS] = (epoch, step, *_last_magnitudes(ws))
            rows = [r for r in trace[step % TRACE_STEPS + 1:] + trace[:step % TRACE_STEPS + 1] if r]
            raise Diverged(b.reason, epoch, step, b.where,
                           [dict(zip(TRACE_COLUMNS, _no_nan(r))) for r in rows]) from None
        metrics = {"train_loss": train_loss, "train_accuracy": train_acc,
                   "val_loss": val_loss, "val_accuracy": val_acc}
        value = metrics[metric]
        if value is not None and (history.best_value is None
                                  or (value > history.best_value if maximize else value < history.best_value)):
            history.best_epoch, history.best_value = epoch, value
            if keep_best and epoch < config.epochs:
                best_state = model.get_state()
            else:
                best_state = None  # the final weights are the best ones
        history.steps = step
        history.epochs.append({"epoch": epoch, **metrics, "seconds": time.perf_counter() - t0})
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
    if keep_best and best_state is not None:
        model.set_state(best_state)
    history.seconds = time.perf_counter() - started
    return history


def _evaluate(ws: Workspace, x, t, y, what: str):
    """Mean loss and accuracy over all rows, in eval mode; blow-ups name ``what``."""
    if len(x) == 0:
        return None, None
    loss, correct = 0.0, 0
    for start in range(0, len(x), ws.rows):
        end = min(start + ws.rows, len(x))
        part = ws.resized(end - start)
        try:
            l, c = part.evaluate(x[start:end], t[start:end], y[start:end])
        except Blowup as b:
            raise Blowup(b.reason, f"{what} {b.where}") from None
        loss += l
        correct += c
    return loss / len(x), correct / len(x)


def _first_bad_stage(pre, w, gw, gh, n_layers: int) -> str:
    if not pre < _INF:
        return f"forward layer {n_layers}"
    if not (gw + gh < _INF):
        return f"backward layer {n_layers}"
    return f"update layer {n_layers}"


def _last_magnitudes(ws: Workspace) -> tuple:
    """The failing step's trace values; the output weights are read as they are now."""
    pre, _, gw, gh = ws.trace
    with np.errstate(all="ignore"):
        w = float(np.abs(ws.model.W[-1]).max())
    return pre, w, gw, gh


def _no_nan(row):
    # results never hold NaN: an unknown or NaN magnitude is None
    return tuple(None if isinstance(v, float) and v != v else v for v in row)
