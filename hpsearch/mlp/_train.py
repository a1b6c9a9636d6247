"""The training loop: mini-batch epochs, metrics, divergence detection, best epoch."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hpsearch._registry import lookup
from hpsearch.errors import DataError, Dead, Diverged
from hpsearch.mlp._config import MLPConfig
from hpsearch.mlp._initializers import SYMMETRIC
from hpsearch.mlp._inputs import check_xy
from hpsearch.mlp._network import EVAL_ROWS, MLP
from hpsearch.mlp._optimizers import OPTIMIZERS
from hpsearch.mlp._outcome import DeadWatch, chance_level, classify
from hpsearch.mlp._reorder import REORDER_MODES, InputOrder
from hpsearch.mlp._replay import SNAPSHOT_EVERY, TRACE_COLUMNS, Snapshots, replay_trace
from hpsearch.mlp._sharpness import SharpnessProbe, probe_rows
from hpsearch.mlp._workspace import ERRSTATE, Blowup, ConstantInputs, Workspace, count_correct

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
    stopped_early: int | None = None  # the last epoch run, when ``config.patience`` stopped the run before the end
    chance: float | None = None  # majority-class rate of the validation labels
    outcome: str | None = None  # "ok", "collapsed" or "stalled" (see hpsearch.mlp._outcome.classify)


def _notes(config: MLPConfig, model: MLP) -> list[str]:
    notes = []
    if model.activation.zero_gradient:
        notes.append(f"activation {config.activation!r} has zero gradient: the hidden layers do not learn")
    if config.weight_init in SYMMETRIC:
        notes.append(
            f"weight_init {config.weight_init!r} gives every unit of a layer the same "
            "weights: the hidden units stay identical"
        )
    return notes


def train(
    config: MLPConfig,
    x_train,
    y_train,
    x_val,
    y_val,
    *,
    on_epoch: Callable[[int, dict], None] | None = None,
    metric: str = "val_accuracy",
    keep_best: bool = False,
    train_metrics: str = "running",
    n_classes: int | None = None,
    reorder: str = "auto",
    explain: bool = True,
    stop_dead: bool = True,
) -> History:
    """Train an MLP on ``(x_train, y_train)``, validating on ``(x_val, y_val)`` every epoch.

    ``on_epoch(epoch, metrics)`` runs after every epoch (1-based) with ``train_loss,
    train_accuracy, val_loss, val_accuracy``; whatever it raises propagates unchanged.
    ``train_metrics`` is ``"running"`` (mean over the epoch's mini-batches, from the
    forward passes already done), ``"full"`` (an extra pass in eval mode) or ``"none"``.
    ``reorder`` chooses the input reordering (constant inputs folded into the bias, column
    blocks that skip each row's leading zeros: the same arithmetic up to rounding, see
    :class:`~hpsearch.mlp._reorder.InputOrder`): ``"auto"`` when the products it saves
    over the run pay for it, ``"always"`` whenever some input varies (and then with
    every column block that skips anything: for tests), ``"never"``.
    Overflow or NaN anywhere raises :class:`hpsearch.errors.Diverged`; with ``explain`` its
    trace is rebuilt by replaying the last steps, with the sharpness of the loss measured
    along them (a run that does not diverge pays nothing for either).
    With ``stop_dead``, a run whose hidden layer is dead (see :class:`~hpsearch.mlp._outcome.DeadWatch`)
    raises :class:`hpsearch.errors.Dead` at the first epoch where that is certain (see
    :func:`_dead_rule`); the run's ``history.outcome`` says whether it learned otherwise.
    """
    if not isinstance(config, MLPConfig):
        config = MLPConfig.from_dict(config)
    lookup(METRICS, metric, "metric")
    lookup({m: m for m in TRAIN_METRICS}, train_metrics, "train_metrics mode")
    lookup(dict.fromkeys(REORDER_MODES), reorder, "reorder mode")
    dtype = np.dtype(config.dtype)
    x_train, y_train, constant, values = check_xy(x_train, y_train, "train", dtype, constants=True)
    x_val, y_val = check_xy(x_val, y_val, "val", dtype)
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
    history = History(model=model, notes=_notes(config, model), metric=metric, chance=chance_level(y_val, n_classes))

    n, batch = len(x_train), min(config.batch_size, len(x_train))
    # the first layer's products skip inputs known to be 0 or constant (see InputOrder)
    plan = (
        None
        if reorder == "never"
        else InputOrder.plan(
            model,
            x_train,
            constant,
            values,
            x_val,
            batch,
            config.epochs,
            **({"min_saving": 0.0, "min_block_skip": 0.0, "block_overhead": 0.0} if reorder == "always" else {}),
        )
    )
    try:
        eval_rows = min(EVAL_ROWS, max(len(x_val), n if train_metrics == "full" else 0, 1))
        probe = _probe_batch(config, x_train, y_train, plan) if explain else None
        if plan is None:
            run = _Run(model, optimizer, x_train, y_train, n_classes, batch, dropout_rng)
            evaluate = _Evaluator(model, eval_rows)
            val_set, train_set = (x_val, y_val, None), (x_train, y_train, None)
        else:
            run = _Run(
                model,
                optimizer,
                plan.training_inputs(x_train),
                y_train,
                n_classes,
                batch,
                dropout_rng,
                plan.train,
                plan.first,
                plan.cuts,
            )
            evaluate = _Evaluator(model, eval_rows, plan.evaluate)
            val_set = plan.evaluation_set(x_val, y_val, eval_rows)
            train_set = plan.evaluation_set(x_train, y_train, eval_rows) if train_metrics == "full" else None
        run.probe = probe
        dead = None
        if stop_dead and config.hidden and not config.batch_norm:  # eval mode = train mode only without BN
            train_all = (
                (lambda: (x_train, y_train, None))
                if plan is None
                else (lambda: plan.evaluation_set(x_train, y_train, eval_rows))
            )
            dead = _DeadCheck(config, model, optimizer, evaluate, train_all)
        _epochs(
            config,
            run,
            evaluate,
            history,
            shuffle_rng,
            train_set,
            val_set,
            on_epoch,
            metric,
            keep_best,
            train_metrics,
            dead,
        )
        history.outcome = classify(history.epochs, history.chance, n_classes, config.loss)
    finally:
        if plan is not None:  # W_1 back in the order of the data's columns
            plan.restore(model)
    history.seconds = time.perf_counter() - started
    return history


def _epochs(
    config,
    run,
    evaluate,
    history,
    shuffle_rng,
    train_set,
    val_set,
    on_epoch,
    metric,
    keep_best,
    train_metrics,
    dead=None,
):
    model, n = run.model, len(run.x)
    running = train_metrics == "running"
    maximize = METRICS[metric] == "max"
    best_state = None

    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        try:
            with np.errstate(**ERRSTATE):
                run.epoch(epoch, shuffle_rng.permutation(n), running)
        except Blowup as b:
            raise run.diverged(b, epoch) from None
        try:
            with np.errstate(**ERRSTATE):
                if running:
                    train_loss, train_acc = run.running_metrics()
                elif train_metrics == "full":
                    train_loss, train_acc = evaluate(*train_set, "train")
                else:
                    train_loss = train_acc = None
                watch = dead.watch() if dead is not None else None
                val_loss, val_acc = evaluate(*val_set, "validation", watch)
        except Blowup as b:
            raise run.diverged(b, epoch) from None
        metrics = {"train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc}
        value = metrics[metric]
        if value is not None and (
            history.best_value is None or (value > history.best_value if maximize else value < history.best_value)
        ):
            history.best_epoch, history.best_value = epoch, value
            if keep_best and epoch < config.epochs:
                best_state = model.get_state()
            else:
                best_state = None  # the final weights are the best ones
        history.steps = run.step
        history.epochs.append({"epoch": epoch, **metrics, "seconds": time.perf_counter() - t0})
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
        # early stopping: no better metric for `patience` epochs
        stop = bool(config.patience) and epoch < config.epochs and epoch - (history.best_epoch or 0) >= config.patience
        if watch is not None:
            dead.after_epoch(watch, epoch, epoch == config.epochs or stop, run.step)
        if stop:
            history.stopped_early = epoch
            break
    if keep_best and best_state is not None:
        model.set_state(best_state)


def _dead_rule(config, optimizer) -> tuple[int, bool]:
    """``(epochs, early)``: how many consecutive epoch ends a hidden layer must be dead on
    the whole training set before the run stops, and whether it may stop before the last epoch.

    Dead is exact when nothing but the gradient moves the weights below the layer: plain
    SGD, adagrad and rmsprop without weight decay (a zero gradient is a zero step), so one
    check suffices. Momentum and adam keep moving the weights for a while on their velocity
    (it decays by its beta every step): two consecutive epoch ends. Weight decay shrinks
    the weights towards the biases, which can wake a unit: no early stop, only the verdict
    at the last epoch. Dropout in the layers below changes their output between training
    and evaluation, so only the first hidden layer is judged then.
    """
    if config.weight_decay:
        return 1, False
    return (2 if optimizer.coasts else 1), True


class _DeadCheck:
    """Screens each epoch's validation pass for a dead hidden layer, confirms it on the
    training set (one eval pass, only when the screen fires) and raises :class:`Dead`."""

    def __init__(self, config, model, optimizer, evaluate, train_all):
        self.config, self.model, self.evaluate, self.train_all = config, model, evaluate, train_all
        self.needed, self.early = _dead_rule(config, optimizer)
        self.streak = 0
        self._train_set = None

    def watch(self) -> DeadWatch:
        return DeadWatch(self.model)

    def after_epoch(self, watch: DeadWatch, epoch: int, last: bool, step: int) -> None:
        if not (self.early or last):
            return
        layer = watch.first_dead()
        if layer is not None and self.config.dropout and layer > 0:
            layer = None
        if layer is None:
            self.streak = 0
            return
        if self._train_set is None:
            self._train_set = self.train_all()
        sure = DeadWatch(self.model)
        with np.errstate(**ERRSTATE):
            try:
                self.evaluate(*self._train_set, "train", sure)
            except Blowup:
                return
        if sure.first_dead() != layer:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.needed or last:
            raise Dead(epoch, step, layer + 1)


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

    def __init__(self, model, optimizer, x, y, n_classes, batch, rng, constant=None, first=None, cuts=None):
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        n = len(x)
        self.batch = batch
        self.n_full, self.last = divmod(n, batch)
        self.steps_per_epoch = self.n_full + (self.last > 0)
        dtype = model.dtype
        self.ws_full = Workspace(model, batch, train=True, rng=rng, grad_scale=optimizer.prescale, constant=constant)
        self.ts_full = _scaled_targets(y, n_classes, dtype, self.ws_full.scale)
        self.ws_last = self.ts_last = None
        if self.last:
            self.ws_last = self.ws_full.resized(self.last)
            self.ts_last = _scaled_targets(y, n_classes, dtype, self.ws_last.scale)
        for ws in (self.ws_full, self.ws_last):
            if ws is not None:
                ws.fuse_sgd(optimizer)
        # column blocks (see InputOrder): each epoch sorts the rows of every batch by ``first``
        self.first = first if cuts is not None else None
        if self.first is not None:
            for ws in (self.ws_full, self.ws_last):
                if ws is not None:
                    ws.set_blocks(cuts, first)
        # the output-layer pre-activations of every step of the epoch, for the running metrics
        self.logits_full = np.empty((self.n_full, n_classes, batch), dtype)
        self.logits_last = np.empty((n_classes, self.last), dtype)
        self.logits_epoch = np.empty((n_classes, n), dtype)
        self.step = 0
        # (epoch, steps before it, its permutation) for every epoch a replay may reach back to
        self.perms = deque(maxlen=2 * SNAPSHOT_EVERY // self.steps_per_epoch + 2)
        self.snapshots = Snapshots(model, optimizer, rng if model.config.dropout else None)

    def epoch(self, epoch: int, perm: np.ndarray, running: bool) -> None:
        x, batch, optimizer, snapshots = self.x, self.batch, self.optimizer, self.snapshots
        ws, ts = self.ws_full, self.ts_full
        reach = [None] * self.n_full
        if self.first is not None:
            perm = perm.copy()  # each batch's rows sorted by their first nonzero input
        batches = perm[: self.n_full * batch].reshape(self.n_full, batch)
        if self.first is not None:
            keys = self.first[batches]
            by_first = np.argsort(keys, axis=1, kind="stable")
            batches[...] = np.take_along_axis(batches, by_first, axis=1)
            reach = ws.block_reach(np.take_along_axis(keys, by_first, axis=1)).tolist()
            rest = perm[self.n_full * batch :]
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
            ws.reach = reach[j]
            self.step = step = step + 1
            train_step(optimizer, outs[j])
        if self.last:
            if not step % SNAPSHOT_EVERY:
                snapshots.take(step)
            self.ws_last.load(x, self.ts_last, perm[self.n_full * batch :])
            self.step = step + 1
            self.ws_last.train_step(optimizer, self.logits_last if running else None)

    def running_metrics(self):
        """Mean loss and accuracy over the epoch's steps, from the logits they computed."""
        n_full, batch, loss = self.n_full, self.batch, self.model.loss
        y = self.y[self.perm]
        logits = self.logits_epoch  # (K, n): one column per sample, in the epoch's order
        np.copyto(logits[:, : n_full * batch].reshape(-1, n_full, batch), self.logits_full.transpose(1, 0, 2))
        logits[:, n_full * batch :] = self.logits_last
        try:
            total = loss.fm_total(logits, y)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, loss.stage) from None
        return total / len(y), count_correct(logits, y) / len(y)

    probe = None  # () -> (x, y): the probe batch of the sharpness, in W_1's row order; None: no trace

    def diverged(self, b: Blowup, epoch: int) -> Diverged:
        """The :class:`Diverged` for blow-up ``b``, its trace rebuilt by replaying the last steps."""
        if self.probe is None:
            return Diverged(b.reason, epoch, self.step, b.where, [])
        rows = self._replay()
        return Diverged(b.reason, epoch, self.step, b.where, [dict(zip(TRACE_COLUMNS, r)) for r in rows])

    def _replay(self) -> list[tuple]:
        workspaces = [ws for ws in (self.ws_full, self.ws_last) if ws is not None]
        return replay_trace(
            self.snapshots,
            self.perms,
            self.step,
            self._load,
            self.optimizer,
            workspaces,
            SharpnessProbe(self.model, *self.probe()),
        )

    def _load(self, j: int, perm: np.ndarray) -> Workspace:
        """Batch ``j`` of the epoch that ran in order ``perm``, loaded into its workspace."""
        ws, ts = (self.ws_full, self.ts_full) if j < self.n_full else (self.ws_last, self.ts_last)
        ws.load(self.x, ts, perm[j * self.batch : (j + 1) * self.batch])
        return ws


def _probe_batch(config: MLPConfig, x, y, plan):
    """A function giving the sharpness's fixed probe batch (drawn from the config's seed) with
    its inputs in the order of W_1's rows; the rows are copied only when it is called."""

    def batch():
        idx = probe_rows(len(x), np.random.default_rng([config.seed, 1]))
        xp = x[idx]
        return (xp if plan is None else xp.take(plan.order, axis=1)), y[idx]

    return batch


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

    def __call__(self, x, y, starts, what: str, watch: DeadWatch | None = None):
        """``(loss, accuracy)``, or ``(None, None)`` without rows; blow-ups name ``what``.
        ``starts``: per chunk of ``rows``, the first input its products need (or ``None``);
        ``watch`` sees the hidden activations of every chunk."""
        n = len(x)
        if n == 0:
            return None, None
        scores = self.scores.get(n)
        if scores is None:
            scores = self.scores[n] = np.empty((self.model.sizes[-1], n), self.model.dtype)
        rows = self.ws.rows
        for start in range(0, n, rows):
            end = min(start + rows, n)
            try:
                ws = self.ws.resized(end - start)
                scores[:, start:end] = ws.scores(x[start:end].T, None if starts is None else starts[start // rows])
                if watch is not None:
                    watch.see(ws)
            except Blowup as b:
                raise Blowup(b.reason, f"{what} {b.where}") from None
        loss = self.model.loss
        try:
            total = loss.fm_total(scores, y)
        except FloatingPointError as err:
            raise Blowup.from_fpe(err, f"{what} {loss.stage}") from None
        return total / n, count_correct(scores, y) / n
