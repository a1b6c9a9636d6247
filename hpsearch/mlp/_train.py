"""The training loop: mini-batch epochs, metrics, divergence detection, best epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hpsearch._registry import lookup
from hpsearch.errors import DataError, Diverged
from hpsearch.mlp._config import MLPConfig
from hpsearch.mlp._initializers import SYMMETRIC
from hpsearch.mlp._layers import EVAL_ROWS, MLP, Blowup, ConstantInputs, Workspace, count_correct
from hpsearch.mlp._optimizers import OPTIMIZERS

TRACE_COLUMNS = ("epoch", "step", "max_abs_preact_out", "max_abs_w_out",
                 "max_abs_grad_w_out", "max_abs_grad_hidden")
TRACE_STEPS = 32  # steps kept in the divergence trace
SNAPSHOT_EVERY = 4 * TRACE_STEPS  # steps between two snapshots of the training state (>= TRACE_STEPS)
METRICS = {"val_accuracy": "max", "val_loss": "min"}
TRAIN_METRICS = ("running", "full", "none")


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


def _all_finite(x: np.ndarray) -> bool:
    # one fast pass: the sum of squares is finite unless some value is not (or it
    # overflows on huge values: then look element by element)
    if math.isfinite(float(np.vdot(x, x))):
        return True
    return bool(np.isfinite(x).all())


def _check_xy(x, y, name: str, dtype, constants: bool = False):
    """``(x, y)`` as arrays of ``dtype`` and int labels, or a :class:`DataError`. With
    ``constants``, also ``(constant, lo)``: which columns hold one value, and each
    column's minimum -- from one min/max pass, which checks finiteness too (NaN and
    inf reach the ends)."""
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 2:
        raise DataError(f"x_{name} must be a 2-D array (samples, features), got shape {x.shape}")
    if not constants:
        if not _all_finite(x):
            _not_finite(x, name)
        return x, _check_y(x, y, name)
    if not len(x):
        return x, _check_y(x, y, name), np.zeros(x.shape[1], bool), np.zeros(x.shape[1], x.dtype)
    with np.errstate(all="ignore"):
        lo, hi = np.minimum.reduce(x, axis=0), np.maximum.reduce(x, axis=0)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        _not_finite(x, name)
    return x, _check_y(x, y, name), lo == hi, lo


def _not_finite(x, name):
    raise DataError(f"x_{name} must be finite, got NaN or inf in {np.count_nonzero(~np.isfinite(x))} values")


def _check_y(x, y, name):
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
    return y


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
    x_train, y_train, constant, values = _check_xy(x_train, y_train, "train", dtype, constants=True)
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
    # the first layer's products skip inputs known to be 0 or constant (see _InputOrder)
    plan = _InputOrder.plan(model, x_train, constant, values, x_val, batch, config.epochs)
    try:
        eval_rows = min(EVAL_ROWS, max(len(x_val), n if train_metrics == "full" else 0, 1))
        if plan is None:
            run = _Run(model, optimizer, x_train, y_train, n_classes, batch, dropout_rng)
            evaluate = _Evaluator(model, eval_rows)
            val_set, train_set = (x_val, y_val, None), (x_train, y_train, None)
        else:
            run = _Run(model, optimizer, plan.training_inputs(x_train), y_train, n_classes, batch,
                       dropout_rng, plan.train, plan.first, plan.groups)
            evaluate = _Evaluator(model, eval_rows, plan.evaluate)
            val_set = plan.evaluation_set(x_val, y_val, eval_rows)
            train_set = plan.evaluation_set(x_train, y_train, eval_rows) if train_metrics == "full" else None
        _epochs(config, run, evaluate, history, shuffle_rng, train_set, val_set,
                on_epoch, metric, keep_best, train_metrics)
    finally:
        if plan is not None:  # W_1 back in the order of the data's columns
            plan.restore(model)
    history.seconds = time.perf_counter() - started
    return history


def _epochs(config, run, evaluate, history, shuffle_rng, train_set, val_set,
            on_epoch, metric, keep_best, train_metrics):
    model, n = run.model, len(run.x)
    running = train_metrics == "running"
    maximize = METRICS[metric] == "max"
    best_state = None

    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        try:
            with np.errstate(**_ERRSTATE):
                run.epoch(epoch, shuffle_rng.permutation(n), running)
        except Blowup as b:
            raise run.diverged(b, epoch) from None
        try:
            with np.errstate(**_ERRSTATE):
                if running:
                    train_loss, train_acc = run.running_metrics()
                elif train_metrics == "full":
                    train_loss, train_acc = evaluate(*train_set, "train")
                else:
                    train_loss = train_acc = None
                val_loss, val_acc = evaluate(*val_set, "validation")
        except Blowup as b:
            raise run.diverged(b, epoch) from None
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
        history.steps = run.step
        history.epochs.append({"epoch": epoch, **metrics, "seconds": time.perf_counter() - t0})
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
    if keep_best and best_state is not None:
        model.set_state(best_state)


# Reorder the inputs when that saves at least this many epochs' worth of the first layer's
# products over the run: the reordering itself (a copy of the inputs, and a few passes
# over them) costs about a third of one epoch's.
REORDER_MIN_SAVING = 0.5
SAMPLE_ROWS = 1024  # training rows looked at to rank the inputs by how often they are nonzero
GROUP_ROWS = 16  # rows per group of a batch's first-layer products, at least (fewer: slower gemms)
MAX_GROUPS = 16


def row_groups(rows: int) -> int:
    """How many row groups a batch of ``rows`` rows is split into (see ``_InputOrder``)."""
    return max(1, min(MAX_GROUPS, rows // GROUP_ROWS))


def _first_nonzero(x: np.ndarray) -> np.ndarray:
    """Per row, the column of its first nonzero value (0 for an all-zero row: it skips nothing)."""
    return (x != 0).argmax(axis=1)


class _InputOrder:
    """The rows of ``W_1`` (and the data's columns) reordered so that the first layer's
    products skip what is known to be 0; :meth:`restore` puts them back in the data's
    order. The same arithmetic up to rounding: only products by zero and by constants
    are left out (an input shifted by its minimum, see ``ConstantInputs.offsets``, is
    one subtraction away from the data).

    Order: the inputs that vary across the training rows, sparsest first; then those
    constant in training but not in validation; then those constant in both.

    - Constant inputs are folded into the bias (:class:`ConstantInputs`): training takes
      the first layer's products over the varying inputs only, evaluation over the
      first two groups.
    - Sparsest first: a row is 0 in every input before its first nonzero one. The rows
      of a batch are sorted by it (their order in a batch changes nothing but rounding,
      and which dropout mask each row draws) and split into a few groups
      (:func:`row_groups`), each taking its products from its first row's first nonzero
      input on. Evaluation sorts its rows the same way once.

    On MNIST at batch 100 the first layer's products then cover 56 % of the inputs
    (``python scripts/bench_core.py`` prints the plan). :meth:`plan` returns ``None``
    when the products saved over the run would not pay for the reordering.
    """

    def __init__(self, order, train: ConstantInputs, evaluate: ConstantInputs, groups: int):
        self.order, self.train, self.evaluate, self.groups = order, train, evaluate, groups
        self.first = None  # per training row, its first nonzero input (when groups > 1)

    @classmethod
    def plan(cls, model: MLP, x, constant, values, x_val, batch: int, epochs: int) -> "_InputOrder | None":
        n_features = len(constant)
        varying = np.flatnonzero(~constant)
        k = len(varying)
        if not k:
            return None
        sample = x[::max(1, len(x) // max(SAMPLE_ROWS, 4 * batch))].take(varying, axis=1, mode="clip")
        # an input whose minimum is more common than 0 (z-scored pixels, say) is shifted by it
        minimum = values[varying]
        shift = np.add.reduce(sample == minimum, axis=0) > np.add.reduce(sample == 0, axis=0)
        offsets = np.where(shift, minimum, 0).astype(x.dtype)
        # rank the varying inputs by how often they are nonzero (once shifted), on the sample
        nonzero = sample != offsets
        ranked = np.argsort(np.add.reduce(nonzero, axis=0, dtype=np.intp), kind="stable")
        varying, offsets = varying[ranked], offsets[ranked]
        groups = row_groups(batch)
        skipped = 0.0
        if groups > 1:
            first = nonzero.take(ranked, axis=1, mode="clip").argmax(axis=1)
            skipped = _expected_skip(first, batch, groups, k)
        if (n_features - k + skipped * k) / n_features * epochs < REORDER_MIN_SAVING:
            return None

        const = np.flatnonzero(constant)
        if len(x_val) and len(const):  # folded in evaluation too where validation holds the same value
            same = (x_val[:, const] == values[const]).all(axis=0)
        else:
            same = np.ones(len(const), bool)
        order = np.concatenate([varying, const[~same], const[same]])

        def folded(active, shifts):
            tail = values[order[active:]]
            return ConstantInputs(active, tail.copy() if tail.any() else None, shifts if shifts.any() else None)

        # evaluation shifts the inputs constant in training alone by that constant
        eval_offsets = np.concatenate([offsets, values[const[~same]]]).astype(x.dtype)
        plan = cls(order, folded(k, offsets), folded(len(eval_offsets), eval_offsets), groups if skipped else 1)
        W1 = model.W[0]
        W1[...] = W1[order]
        return plan

    def training_inputs(self, x: np.ndarray) -> np.ndarray:
        """The training rows' varying inputs, in the new order, shifted (and ``first``)."""
        x = x.take(self.order[:self.train.active], axis=1, mode="clip")
        if self.train.offsets is not None:
            x -= self.train.offsets
        if self.groups > 1:
            self.first = _first_nonzero(x)
        return x

    def evaluation_set(self, x: np.ndarray, y: np.ndarray, rows: int):
        """``(x, y, starts)`` for :class:`_Evaluator`: the inputs in the new order, the rows
        sorted by their first nonzero input, and where each chunk of ``rows`` starts."""
        x = x.take(self.order[:self.evaluate.active], axis=1, mode="clip")
        if self.evaluate.offsets is not None:
            x -= self.evaluate.offsets
        first = _first_nonzero(x)
        by_first = np.argsort(first, kind="stable")
        return x.take(by_first, axis=0, mode="clip"), y[by_first], first[by_first[::rows]].tolist()

    def restore(self, model: MLP) -> None:
        W1 = model.W[0]
        W1[self.order] = W1.copy()


def _expected_skip(first: np.ndarray, batch: int, groups: int, n_inputs: int) -> float:
    """The share of a batch's first-layer products its row groups skip, estimated from
    the first nonzero input of a sample of rows, in batches of the sample."""
    k_rows = len(first) // batch * batch
    if not k_rows:
        return 0.0
    # a fixed shuffle of its own (the run's generators are not touched): the data may be sorted
    first = np.random.default_rng(0).permutation(first)
    sorted_batches = np.sort(first[:k_rows].reshape(-1, batch), axis=1)
    bounds = [i * batch // groups for i in range(groups + 1)]
    sizes = np.diff(bounds)
    skipped = (sorted_batches[:, bounds[:-1]] * sizes).sum() / (k_rows * n_inputs)
    return float(skipped)


_ERRSTATE = dict(over="raise", invalid="raise", divide="raise", under="ignore")


class _Run:
    """The mini-batch steps of one training run, and the replay that explains a divergence.

    Detection costs nothing per step: every stage runs under ``np.errstate(raise)``,
    so the first overflow or NaN raises at the step and stage where it happens (and
    the inputs were checked finite). The trace magnitudes are not computed as the run
    goes: a snapshot of the training state (parameters, batch-norm statistics,
    optimizer state, dropout generator) is kept every ``SNAPSHOT_EVERY`` steps, and on
    a divergence the steps from the one before the last ``TRACE_STEPS`` are replayed
    with tracing on.
    Replay is exact: the same arithmetic on the same batches gives the same numbers.
    """

    def __init__(self, model, optimizer, x, y, n_classes, batch, rng, constant=None, first=None, groups=1):
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        n = len(x)
        self.batch = batch
        self.n_full, self.last = divmod(n, batch)
        self.steps_per_epoch = self.n_full + (self.last > 0)
        dtype = model.dtype
        self.ws_full = Workspace(model, batch, train=True, rng=rng, grad_scale=optimizer.prescale,
                                 constant=constant)
        self.ts_full = _scaled_targets(y, n_classes, dtype, self.ws_full.scale)
        self.ws_last = self.ts_last = None
        if self.last:
            self.ws_last = self.ws_full.resized(self.last)
            self.ts_last = _scaled_targets(y, n_classes, dtype, self.ws_last.scale)
        for ws in (self.ws_full, self.ws_last):
            if ws is not None:
                ws.fuse_sgd(optimizer)
        # row groups (see _InputOrder): each epoch sorts the rows of every batch by ``first``
        self.first = first if groups > 1 else None
        if self.first is not None:
            self.ws_full.set_groups(groups, first)
            if self.ws_last is not None:
                self.ws_last.set_groups(row_groups(self.last), first)
        # the output-layer pre-activations of every step of the epoch, for the running metrics
        self.logits_full = np.empty((self.n_full, n_classes, batch), dtype)
        self.logits_last = np.empty((n_classes, self.last), dtype)
        self.logits_epoch = np.empty((n_classes, n), dtype)
        self.step = 0
        # (epoch, steps before it, its permutation) for every epoch a replay may reach back to
        self.perms = deque(maxlen=2 * SNAPSHOT_EVERY // self.steps_per_epoch + 2)
        self.snapshots = _Snapshots(model, optimizer, rng if model.config.dropout else None)

    def epoch(self, epoch: int, perm: np.ndarray, running: bool) -> None:
        x, batch, optimizer, snapshots = self.x, self.batch, self.optimizer, self.snapshots
        ws, ts = self.ws_full, self.ts_full
        starts = [None] * self.n_full
        if self.first is not None:
            perm = perm.copy()  # each batch's rows sorted by their first nonzero input
        batches = perm[:self.n_full * batch].reshape(self.n_full, batch)
        if self.first is not None:
            keys = self.first[batches]
            by_first = np.argsort(keys, axis=1, kind="stable")
            batches[...] = np.take_along_axis(batches, by_first, axis=1)
            starts = np.take_along_axis(keys, by_first[:, ws.heads], axis=1).tolist()
            rest = perm[self.n_full * batch:]
            rest[...] = rest[np.argsort(self.first[rest], kind="stable")]
        self.perm = perm
        self.perms.append((epoch, self.step, perm))
        X, T, train_step = ws.x, ws.t, ws.train_step
        outs = self.logits_full if running else [None] * self.n_full
        take_x, take_t = x.take, ts.take
        step = self.step
        for j, idx in enumerate(batches):
            if not step % SNAPSHOT_EVERY:
                snapshots.take(step)
            take_x(idx, axis=0, out=X, mode="clip")
            take_t(idx, axis=1, out=T, mode="clip")
            ws.starts = starts[j]
            self.step = step = step + 1
            train_step(optimizer, outs[j])
        if self.last:
            if not step % SNAPSHOT_EVERY:
                snapshots.take(step)
            self.ws_last.load(x, self.ts_last, perm[self.n_full * batch:])
            self.step = step + 1
            self.ws_last.train_step(optimizer, self.logits_last if running else None)

    def running_metrics(self):
        """Mean loss and accuracy over the epoch's steps, from the logits they computed."""
        n_full, batch, loss = self.n_full, self.batch, self.model.loss
        y = self.y[self.perm]
        logits = self.logits_epoch  # (K, n): one column per sample, in the epoch's order
        np.copyto(logits[:, :n_full * batch].reshape(-1, n_full, batch), self.logits_full.transpose(1, 0, 2))
        logits[:, n_full * batch:] = self.logits_last
        try:
            total = loss.fm_total(logits, y)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, loss.stage) from None
        return total / len(y), count_correct(logits, y) / len(y)

    def diverged(self, b: Blowup, epoch: int) -> Diverged:
        """The :class:`Diverged` for blow-up ``b``, its trace rebuilt by replaying the last steps."""
        rows = self._replay()
        return Diverged(b.reason, epoch, self.step, b.where,
                        [dict(zip(TRACE_COLUMNS, _no_nan(r))) for r in rows])

    def _replay(self) -> list[tuple]:
        last = self.step
        first = max(1, last - TRACE_STEPS + 1)
        at = self.snapshots.restore(first - 1)
        rows = []
        workspaces = [ws for ws in (self.ws_full, self.ws_last) if ws is not None]
        for ws in workspaces:
            ws.tracing = True
        try:
            with np.errstate(**_ERRSTATE):
                for s in range(at + 1, last + 1):
                    epoch, before, perm = next(e for e in reversed(self.perms) if e[1] < s)
                    j = s - before - 1
                    ws, ts = (self.ws_full, self.ts_full) if j < self.n_full else (self.ws_last, self.ts_last)
                    ws.load(self.x, ts, perm[j * self.batch:(j + 1) * self.batch])
                    try:
                        ws.train_step(self.optimizer)
                    except Blowup:  # the failing step: the magnitudes it reached before blowing up
                        rows.append((epoch, s, *_last_magnitudes(ws)))
                        break
                    if s >= first:
                        rows.append((epoch, s, *ws.trace))
        finally:
            for ws in workspaces:
                ws.tracing = False
        return rows[-TRACE_STEPS:]


class _Snapshots:
    """The training state after step ``s`` for the last two multiples ``s`` of SNAPSHOT_EVERY
    (buffers reused: nothing is allocated after the first two). The older one is at
    least SNAPSHOT_EVERY >= TRACE_STEPS steps back, so one of them precedes the last
    TRACE_STEPS steps."""

    def __init__(self, model, optimizer, rng):
        self.model, self.optimizer, self.rng = model, optimizer, rng
        self.slots = []

    def _arrays(self):
        model = self.model
        return {"params": model.params,
                **{f"mean{i}": a for i, a in enumerate(model.running_mean)},
                **{f"var{i}": a for i, a in enumerate(model.running_var)},
                **{f"opt.{k}": a for k, a in self.optimizer.state_arrays().items()}}

    def take(self, step: int) -> None:
        slot = self.slots.pop(0) if len(self.slots) == 2 else {"arrays": {}}
        kept = slot["arrays"]
        live = self._arrays()
        for key, src in live.items():
            dst = kept.get(key)
            if dst is None or dst.shape != src.shape:
                kept[key] = src.copy()
            else:
                np.copyto(dst, src)
        for key in [k for k in kept if k not in live]:
            del kept[key]
        slot["step"] = step
        slot["t"] = self.optimizer.t
        slot["rng"] = self.rng.bit_generator.state if self.rng is not None else None
        self.slots.append(slot)

    def restore(self, upto: int) -> int:
        """Put back the latest snapshot taken at or before step ``upto``; returns its step."""
        slot = max((s for s in self.slots if s["step"] <= upto), key=lambda s: s["step"])
        model, opt = self.model, self.optimizer
        kept = slot["arrays"]
        np.copyto(model.params, kept["params"])
        for i, a in enumerate(model.running_mean):
            np.copyto(a, kept[f"mean{i}"])
        for i, a in enumerate(model.running_var):
            np.copyto(a, kept[f"var{i}"])
        opt.t = slot["t"]  # at t == 0 the optimizer re-creates its state on the next update
        for key, a in kept.items():
            if key.startswith("opt."):
                setattr(opt, key[4:], a.copy())
        if self.rng is not None:
            self.rng.bit_generator.state = slot["rng"]
        return slot["step"]


def _scaled_targets(y, k: int, dtype, scale) -> np.ndarray:
    """One-hot targets times ``scale``, feature-major: shape (k, n)."""
    ts = np.zeros((k, len(y)), dtype)
    ts[y, np.arange(len(y))] = scale
    return ts


class _Evaluator:
    """Mean loss and accuracy over a data set in eval mode: forward passes in chunks of
    ``rows``, the scores gathered, then loss and accuracy computed once for all rows."""

    def __init__(self, model: MLP, rows: int, constant: ConstantInputs | None = None):
        self.model = model
        self.ws = Workspace(model, rows, train=False, constant=constant)
        self.scores = {}

    def __call__(self, x, y, starts, what: str):
        """``(loss, accuracy)``, or ``(None, None)`` without rows; blow-ups name ``what``.
        ``starts``: per chunk of ``rows``, the first input its products need (or ``None``)."""
        n = len(x)
        if n == 0:
            return None, None
        scores = self.scores.get(n)
        if scores is None:
            scores = self.scores[n] = np.empty((self.model.sizes[-1], n), self.model.dtype)
        rows = self.ws.rows
        for start in range(0, n, rows):
            end = min(start + rows, n)
            part = self.ws.resized(end - start)
            part.starts = None if starts is None else starts[start // rows:start // rows + 1]
            try:
                part._forward(x[start:end].T, False, part.out)
            except Blowup as b:
                raise Blowup(b.reason, f"{what} {b.where}") from None
            scores[:, start:end] = part.out
        loss = self.model.loss
        try:
            total = loss.fm_total(scores, y)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"{what} {loss.stage}") from None
        return total / n, count_correct(scores, y) / n


def _last_magnitudes(ws: Workspace) -> tuple:
    """The failing step's trace values; the output weights are read as they are now."""
    pre, _, gw, gh = ws.trace
    with np.errstate(all="ignore"):
        w = float(np.abs(ws.model.W[-1]).max())
    return pre, w, gw, gh


def _no_nan(row):
    # results never hold NaN: an unknown or NaN magnitude is None
    return tuple(None if isinstance(v, float) and v != v else v for v in row)
