"""The training loop: known answers on digits, divergence as a result, reproducibility."""

import math
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hpsearch.errors import DataError, Dead, Diverged, HPSearchError
from hpsearch.mlp import ACTIVATIONS, MLP, OPTIMIZERS, TRACE_COLUMNS, History, MLPConfig, train
from hpsearch.mlp._reorder import InputOrder

# measured: seed 0 reaches 0.972 (best epoch), seeds 0-9 reach >= 0.95 by their best epoch
DIGITS_MIN_ACCURACY = 0.93
SANE_LR = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.05, "rmsprop": 0.002, "adam": 0.002}


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        d.data / 16.0, d.target, test_size=0.2, stratify=d.target, random_state=0
    )
    return x_train, y_train, x_val, y_val


DEFAULT = MLPConfig(
    hidden=(64, 32), activation="relu", weight_init="he_normal", optimizer="sgd", lr=0.1, batch_size=32, epochs=10
)
HUGE_LR = DEFAULT.replace(activation="leaky_relu", alpha=0.1, lr=50.0, weight_init="normal", init_std=1.0)


def strip_seconds(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history.epochs]


def test_default_config_learns_digits(digits):
    history = train(DEFAULT, *digits)
    assert isinstance(history, History)
    assert history.best_value >= DIGITS_MIN_ACCURACY
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert history.steps == 10 * math.ceil(len(digits[0]) / 32)
    assert [e["epoch"] for e in history.epochs] == list(range(1, 11))
    assert history.seconds > 0 and history.notes == []
    assert history.model.evaluate(digits[2], digits[3])["accuracy"] == pytest.approx(history.epochs[-1]["val_accuracy"])


def test_huge_learning_rate_diverges_with_a_trace(digits):
    with pytest.raises(Diverged) as info:
        train(HUGE_LR, *digits)
    err = info.value
    assert err.reason in ("overflow", "nan")
    assert err.epoch == 1 and 1 <= err.step <= math.ceil(len(digits[0]) / 32)
    assert re.fullmatch(r"(forward|backward|update) layer [123]|softmax", err.where)
    assert 1 <= len(err.trace) <= 32
    assert all(tuple(row) == TRACE_COLUMNS for row in err.trace)
    assert [row["step"] for row in err.trace] == list(range(err.step - len(err.trace) + 1, err.step + 1))
    growth = [row["max_abs_w_out"] for row in err.trace]
    assert growth[-1] > 1e6 * growth[0]  # the blow-up is visible in the trace
    assert str(err).startswith(f"{err.reason} in {err.where} at epoch 1, step {err.step}")


def test_overflow_in_the_validation_pass_is_a_divergence(digits):
    x_train, y_train, x_val, y_val = digits
    with pytest.raises(Diverged) as info:
        train(DEFAULT.replace(epochs=2), x_train, y_train, x_val * 1e38, y_val)
    assert (info.value.reason, info.value.epoch) == ("overflow", 1)
    assert re.fullmatch(r"validation forward layer [123]", info.value.where)
    assert info.value.step == math.ceil(len(x_train) / 32) == info.value.trace[-1]["step"]


def test_evaluate_reports_an_overflowing_loss_as_infinite(digits):
    model = train(DEFAULT.replace(epochs=1), *digits).model
    assert model.evaluate(digits[2] * 1e38, digits[3])["loss"] == math.inf


def test_trace_keeps_the_last_32_steps(digits):
    # measured: a linear network with tiny batches blows up at step 142
    config = DEFAULT.replace(activation="identity", lr=0.15, batch_size=2, epochs=1)
    with pytest.raises(Diverged) as info:
        train(config, *digits)
    trace = info.value.trace
    assert info.value.step > 32 and len(trace) == 32
    assert trace[-1]["step"] == info.value.step
    assert all(v is None or not math.isnan(v) for row in trace for v in row.values())


def test_same_seed_same_history_different_seed_different(digits):
    config = DEFAULT.replace(epochs=3, dropout=0.2)
    a, b = train(config, *digits), train(config, *digits)
    assert strip_seconds(a) == strip_seconds(b)
    np.testing.assert_array_equal(a.model.params, b.model.params)
    c = train(config.replace(seed=1), *digits)
    assert strip_seconds(a) != strip_seconds(c)


def test_on_epoch_sees_every_epoch_and_its_exceptions_propagate(digits):
    seen = []

    class Stop(Exception):
        pass

    def on_epoch(epoch, metrics):
        seen.append((epoch, sorted(metrics)))
        if epoch == 2:
            raise Stop("pruned")

    with pytest.raises(Stop, match="pruned"):
        train(DEFAULT, *digits, on_epoch=on_epoch)
    assert seen == [(e, ["train_accuracy", "train_loss", "val_accuracy", "val_loss"]) for e in (1, 2)]


def test_on_epoch_runs_outside_the_floating_point_trap(digits):
    def on_epoch(epoch, metrics):
        np.log(np.zeros(1))  # would raise if the trainer's errstate leaked into the callback

    with pytest.warns(RuntimeWarning):
        train(DEFAULT.replace(epochs=1), *digits, on_epoch=on_epoch)


def test_val_loss_metric_is_minimized_and_keep_best_restores_the_best_weights(digits):
    config = DEFAULT.replace(lr=0.5, epochs=8)
    history = train(config, *digits, metric="val_loss", keep_best=True)
    losses = [e["val_loss"] for e in history.epochs]
    assert history.best_value == min(losses)
    assert history.best_epoch == losses.index(min(losses)) + 1
    assert history.model.evaluate(digits[2], digits[3])["loss"] == pytest.approx(history.best_value, rel=1e-5)


def test_train_metrics_modes(digits):
    config = DEFAULT.replace(epochs=2)
    none = train(config, *digits, train_metrics="none")
    assert all(e["train_loss"] is None and e["train_accuracy"] is None for e in none.epochs)
    full = train(config, *digits, train_metrics="full")
    final = full.model.evaluate(digits[0], digits[1])
    assert full.epochs[-1]["train_loss"] == pytest.approx(final["loss"], rel=1e-5)
    assert full.epochs[-1]["train_accuracy"] == pytest.approx(final["accuracy"])
    running = train(config, *digits)
    assert [e["val_loss"] for e in running.epochs] == [e["val_loss"] for e in none.epochs]
    with pytest.raises(HPSearchError, match=r"unknown train_metrics mode 'all' \(allowed: full, none, running\)"):
        train(config, *digits, train_metrics="all")
    with pytest.raises(HPSearchError, match=r"unknown metric 'accuracy' \(allowed: val_accuracy, val_loss\)"):
        train(config, *digits, metric="accuracy")


def test_reorder_auto_plans_only_what_pays_always_plans_never_does_not(digits, monkeypatch):
    # one epoch at batch 10 (no column blocks): folding digits' few constant inputs saves
    # less than the reordering costs, so "auto" declines; the weights agree to rounding
    plans, plan = [], InputOrder.plan
    monkeypatch.setattr(InputOrder, "plan", staticmethod(lambda *a, **k: plans.append(plan(*a, **k)) or plans[-1]))
    config = DEFAULT.replace(batch_size=10, epochs=1, dtype="float64")
    runs = {mode: train(config, *digits, reorder=mode) for mode in ("auto", "always", "never")}
    assert plans[0] is None and plans[1] is not None and len(plans) == 2
    np.testing.assert_allclose(runs["always"].model.params, runs["never"].model.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(runs["auto"].model.params, runs["never"].model.params)
    with pytest.raises(HPSearchError, match=r"unknown reorder mode 'yes' \(allowed: always, auto, never\)"):
        train(config, *digits, reorder="yes")


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_learns_digits(digits, optimizer):
    config = DEFAULT.replace(optimizer=optimizer, lr=SANE_LR[optimizer], epochs=3)
    assert train(config, *digits).best_value > 0.85


@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"step"}))
def test_every_activation_trains_without_diverging(digits, activation):
    config = DEFAULT.replace(activation=activation, optimizer="adagrad", lr=0.05, epochs=2)
    assert train(config, *digits).best_value > 0.8


def test_step_activation_trains_only_the_output_layer(digits):
    config = DEFAULT.replace(activation="step", epochs=2)
    history = train(config, *digits)
    assert history.notes == ["activation 'step' has zero gradient: the hidden layers do not learn"]
    init = MLP(config, 64, 10, rng=np.random.default_rng(config.seed).spawn(3)[0])
    for trained, initial in zip(history.model.W[:-1], init.W[:-1]):
        np.testing.assert_array_equal(trained, initial)
    assert not np.array_equal(history.model.W[-1], init.W[-1])
    assert history.best_value > 0.15  # better than chance, from the output layer alone


def test_zeros_init_is_noted(digits):
    history = train(DEFAULT.replace(weight_init="zeros", epochs=1), *digits, stop_dead=False)
    assert any("same weights" in note for note in history.notes)


def test_a_zeros_initialized_relu_network_is_dead_from_the_first_epoch(digits):
    # every pre-activation is 0, so every ReLU unit passes no gradient: dead, and stopped at once
    with pytest.raises(Dead, match=r"hidden layer 1 outputs the same value for every training input at epoch 1"):
        train(DEFAULT.replace(weight_init="zeros", activation="relu", epochs=3), *digits)


@pytest.mark.parametrize(
    "changes, at_least",
    [
        ({"batch_norm": True}, 0.85),
        ({"dropout": 0.5}, 0.75),
        ({"weight_decay": 1e-3, "optimizer": "momentum", "lr": 0.05}, 0.85),
        ({"loss": "mean_squared_error", "lr": 0.05}, 0.5),
        ({"dtype": "float64"}, 0.85),
        ({"batch_size": 1000, "lr": 0.5}, 0.3),  # one full and one partial batch per epoch: 6 steps
        ({"batch_size": 5000, "lr": 0.5}, 0.3),  # larger than the data set: 3 steps
    ],
)
def test_variants_train_and_never_report_nan(digits, changes, at_least):
    history = train(DEFAULT.replace(epochs=3, **changes), *digits)
    assert history.best_value > at_least
    values = [v for e in history.epochs for v in e.values()]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def test_eval_mode_is_deterministic_and_independent_of_the_batch(digits):
    history = train(DEFAULT.replace(batch_norm=True, dropout=0.3, epochs=2), *digits)
    x_val = digits[2]
    scores = history.model.scores(x_val)
    np.testing.assert_array_equal(history.model.scores(x_val), scores)
    np.testing.assert_allclose(history.model.scores(x_val[5:6]), scores[5:6], rtol=1e-5, atol=1e-6)
    proba = history.model.predict_proba(x_val)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(history.model.predict(x_val), scores.argmax(axis=1))


def test_model_repr_is_readable():
    config = MLPConfig(hidden=(93, 42), activation="leaky_relu", alpha=0.13, lr=0.302)
    assert repr(MLP(config, 784, 10)) == "MLP [784→93→42→10] leaky_relu(0.13) sgd lr=0.302"


def test_n_classes_can_exceed_the_labels_seen(digits):
    history = train(DEFAULT.replace(epochs=1), *digits, n_classes=12)
    assert history.model.sizes[-1] == 12


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.zeros(10), np.zeros(10, int)), "x_train must be a 2-D array (samples, features), got shape (10,)"),
        (
            (np.zeros((10, 3)), np.zeros(9, int)),
            "y_train must be 1-D with one label per row of x_train (10), got shape (9,)",
        ),
        ((np.zeros((10, 3)), np.full(10, 0.5)), "y_train must hold integer class labels, got dtype float64"),
        ((np.zeros((10, 3)), np.full(10, -1)), "y_train labels must be >= 0, got -1"),
        ((np.full((10, 3), np.nan), np.zeros(10, int)), "x_train must be finite, got NaN or inf in 30 values"),
    ],
)
def test_bad_arrays_are_data_errors(args, message):
    x_val, y_val = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match=re.escape(message)):
        train(MLPConfig(epochs=1), *args, x_val, y_val)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_one_full_batch_step_is_params_minus_lr_times_backprop_gradient(digits, optimizer):
    from hpsearch.mlp._workspace import Workspace, one_hot

    x, y = digits[0][:200], digits[1][:200]
    config = DEFAULT.replace(optimizer=optimizer, lr=0.3, weight_decay=0.01, batch_size=200, epochs=1, dtype="float64")
    trained = train(config, x, y, x, y, n_classes=10).model
    model = MLP(config, 64, 10, rng=np.random.default_rng(config.seed).spawn(3)[0])
    ws = Workspace(model, 200, train=True)
    ws.forward(x, True)
    ws.loss_and_delta(one_hot(y, 10, np.float64), False)
    ws.backward(x)
    # first step of momentum from v = 0 is the same as sgd: p - lr * (g + wd * w)
    np.testing.assert_allclose(trained.params, model.params - 0.3 * model.grads, rtol=1e-10, atol=1e-12)


def test_a_shorter_last_batch_does_not_disturb_the_full_batch_workspace():
    from hpsearch.mlp._workspace import Workspace

    config = MLPConfig(hidden=(8, 6), batch_norm=True, dropout=0.0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((10, 4))
    fresh = Workspace(MLP(config, 4, 3), 10, train=True).forward(x, True).copy()
    ws = Workspace(MLP(config, 4, 3), 10, train=True)
    ws.resized(3).forward(x[:3], True)
    np.testing.assert_array_equal(ws.forward(x, True), fresh)


@pytest.mark.parametrize(
    "changes",
    [
        # measured: sgd with tiny batches (the fused first-layer update), one epoch, step 179
        {"activation": "identity", "lr": 0.15, "batch_size": 2, "epochs": 1},
        # measured: momentum + dropout, blows up at step 200 in epoch 3: the replay crosses an
        # epoch and restores the optimizer's velocity and the dropout generator
        {"activation": "identity", "lr": 0.05, "batch_size": 16, "epochs": 6, "optimizer": "momentum", "dropout": 0.2},
        # measured: the validation pass of epoch 4 overflows; batches of 100 leave a short last one
        {"activation": "identity", "lr": 0.2, "batch_size": 100, "epochs": 6, "optimizer": "momentum", "dropout": 0.2},
    ],
)
def test_the_trace_is_what_the_diverging_run_computed(digits, monkeypatch, changes):
    # the trainer computes no magnitudes as it goes: on a divergence it replays the last
    # steps from a snapshot. The replay must give exactly what tracing every step records.
    from hpsearch.mlp._workspace import Workspace

    plain_step, seen, count = Workspace.train_step, {}, iter(range(1, 10**6))

    def traced_step(self, optimizer, out=None):
        if self.tracing:  # the trainer's replay
            return plain_step(self, optimizer, out)
        step, self.tracing = next(count), True
        try:
            plain_step(self, optimizer, out)
        finally:
            self.tracing = False
            seen[step] = list(self.trace)

    monkeypatch.setattr(Workspace, "train_step", traced_step)
    with pytest.raises(Diverged) as info:
        train(DEFAULT.replace(**changes), *digits)
    err = info.value
    assert len(err.trace) == 32 and err.trace[-1]["step"] == err.step == max(seen)
    for row in err.trace[:-1] if err.where.startswith(("forward", "backward", "update", "softmax")) else err.trace:
        assert [row[c] for c in TRACE_COLUMNS[2:6]] == seen[row["step"]]  # the magnitudes (then sharpness)
    last = err.trace[-1]  # the failing step: its output weights are read as they are now
    assert (last["max_abs_preact_out"], last["max_abs_grad_w_out"]) == (seen[err.step][0], seen[err.step][2])


@pytest.mark.parametrize("reorder", ["never", "always"])
@pytest.mark.parametrize("changes", [{}, {"optimizer": "adam", "lr": 0.002}, {"dropout": 0.2}, {"batch_norm": True}])
def test_both_layouts_of_the_first_hidden_layer_train_the_same_weights(digits, monkeypatch, changes, reorder):
    # the first hidden layer is stored sample-major only where the BLAS kernels run its
    # products faster that way: whichever the machine has, both layouts (with and without
    # column blocks) must train alike
    from hpsearch.mlp import _blas, _workspace

    x_train, y_train, x_val, y_val = digits
    config = DEFAULT.replace(dtype="float64", epochs=2, batch_size=16, **changes)
    results, plans, plan = [], [], InputOrder.plan
    monkeypatch.setattr(InputOrder, "plan", staticmethod(lambda *a, **k: plans.append(plan(*a, **k)) or plans[-1]))
    for sample_major in (True, False):
        monkeypatch.setattr(_blas, "sample_major_first_layer", lambda sample_major=sample_major: sample_major)
        model = MLP(config, 64, 10)
        for rows in (16, 512):  # a training batch, an evaluation chunk
            ws = _workspace.Workspace(model, rows, train=rows == 16)
            assert ws.sample_major == sample_major == ws.layers[0].u.T.flags.c_contiguous
        results.append(train(config, x_train, y_train, x_val, y_val, reorder=reorder))
    if reorder == "always":
        assert all(p.blocks > 1 for p in plans)
    np.testing.assert_allclose(results[0].model.params, results[1].model.params, rtol=1e-9, atol=1e-12)
    for a, b in zip(strip_seconds(results[0]), strip_seconds(results[1])):
        assert a == pytest.approx(b, rel=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_blas_block_calls_match_numpy_for_any_block_and_row_count(dtype):
    # the ctypes calls keep their arguments built once per block and row count: every
    # combination, repeated and interleaved, must compute exactly its own block and rows
    from hpsearch.mlp import _blas

    kernel = _blas.update_kernel(dtype)
    if kernel is None or kernel.product is None:
        pytest.skip("numpy's BLAS has no cblas symbols here")
    rng = np.random.default_rng(3)
    m, n, w = 9, 13, 5
    x = rng.standard_normal((m, n)).astype(dtype)
    g = rng.standard_normal((m, w)).astype(dtype)  # sample-major, as the trainer holds it
    W = rng.standard_normal((n, w)).astype(dtype)
    out = np.full((m, w), np.nan, dtype)
    g_fm = np.ascontiguousarray(g.T)  # the same gradient, feature-major
    block, update, update_fm = kernel.product(x, W, out), kernel.bind(W, x, g, 0.5), kernel.bind(W, x, g_fm, 0.5, False)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    calls = [(0, n, m), (0, 4, 3), (4, 13, 9), (0, 4, 7), (4, 13, 2), (0, 4, 3), (7, 9, 0), (4, 13, 9)]
    calls += [tuple(sorted(rng.choice(n + 1, 2, replace=False))) + (int(rng.integers(0, m + 1)),) for _ in range(30)]
    for i, (lo, hi, rows) in enumerate(calls):
        accumulate = bool(i % 3)
        want = out.copy()
        part = x[:rows, lo:hi] @ W[lo:hi]
        want[:rows] = want[:rows] + part if accumulate else part
        block(lo, hi, rows, accumulate)
        np.testing.assert_allclose(out, want, **tol)  # the other rows untouched
        out[np.isnan(out)] = 0.0
        for one in (update, update_fm):
            want = W.copy()
            want[lo:hi] = 0.5 * W[lo:hi] - x[:rows, lo:hi].T @ g[:rows]
            one(lo, hi, rows)
            np.testing.assert_allclose(W, want, **tol)  # the other rows of W untouched


@pytest.mark.parametrize("kernel", ["numpy_cblas", "scipy_gemm"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_fused_first_layer_update_is_plain_sgd_and_reports_overflow(dtype, kernel, monkeypatch):
    # plain SGD updates W_1 inside the gemm that computes its gradient: numpy's own BLAS
    # through ctypes, else (small batches) scipy's gemm wrapper
    from hpsearch.mlp import _blas
    from hpsearch.mlp._optimizers import SGD
    from hpsearch.mlp._workspace import Blowup, Workspace

    probe = _blas.KernelProbe([s for s in _blas.KERNELS.sources if s[0] == kernel])
    monkeypatch.setattr(_blas, "KERNELS", probe)
    assert _blas.update_kernel(dtype).source == kernel

    config = MLPConfig(hidden=(6, 5), lr=0.1, weight_decay=0.01, batch_size=4, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    results = []
    for fuse in (True, False):
        model, opt = MLP(config, 3, 2, rng=np.random.default_rng(0)), SGD(0.1)
        ws = Workspace(model, 4, train=True, grad_scale=opt.prescale)
        if fuse:
            assert ws.fuse_sgd(opt)
        ts = np.zeros((2, 4), dtype)
        ts[1] = ws.scale
        ws.load(x, ts, np.arange(4))
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            ws.train_step(opt)
        results.append(model.params.copy())
    np.testing.assert_allclose(*results, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-7)

    # an overflow inside the fused gemm is caught at that step, like one in numpy
    for fuse, where in ((True, "update layer 1"), (False, "backward layer 1")):
        # tiny first-layer weights on huge inputs: the forward pass is fine, x^T g overflows
        tiny, w, big = (1e-20, 1e15, 1e10) if dtype == "float32" else (1e-210, 1e50, 1e210)
        model, opt = MLP(config.replace(activation="identity", weight_decay=0.0), 3, 2), SGD(0.1)
        model.W[0][...], model.W[1][...] = tiny, w
        model.W[2][:, 0], model.W[2][:, 1] = w, -w
        ws = Workspace(model, 4, train=True, grad_scale=opt.prescale)
        if fuse:
            assert ws.fuse_sgd(opt)
        ws.load(np.full((4, 3), big, dtype), ts, np.arange(4))
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            with pytest.raises(Blowup) as info:
                ws.train_step(opt)
        assert (info.value.reason, info.value.where) == ("overflow", where)


def _steps(config, x, y, fast, cuts=None, steps=5, scale_w=None):
    """``(params, outputs)`` after ``steps`` plain-SGD steps of a fused workspace over batches
    of ``x`` (sorted by first nonzero input with ``cuts``), the fast step on or off; or the
    ``(reason, where)`` of the Blowup that stopped them."""
    from hpsearch.mlp._optimizers import SGD
    from hpsearch.mlp._train import _scaled_targets
    from hpsearch.mlp._workspace import ERRSTATE, Blowup, Workspace

    m, d = config.batch_size, x.shape[1]
    model, opt = MLP(config, d, 3, rng=np.random.default_rng(1)), SGD(config.lr)
    if scale_w is not None:
        model.W[scale_w[0]][...] *= scale_w[1]
    ws = Workspace(model, m, train=True, grad_scale=opt.prescale)
    assert ws.fuse_sgd(opt)
    assert ws._fast is not None
    if not fast:
        ws._fast = None
    first = (x != 0).argmax(axis=1)
    if cuts is not None:
        ws.set_blocks(np.array(cuts), first)
    ts = _scaled_targets(y, 3, x.dtype, ws.scale)
    outs = []
    with np.errstate(**ERRSTATE):
        for step in range(steps):
            idx = np.random.default_rng(step).permutation(len(x))[:m]
            if cuts is not None:
                idx = idx[np.argsort(first[idx], kind="stable")]
            ws.load(x, ts, idx)
            out = np.empty((3, m), x.dtype)
            try:
                ws.train_step(opt, out)
            except Blowup as b:
                return b.reason, b.where
            outs.append(out)
    return model.params.copy(), np.stack(outs)


@pytest.mark.parametrize("hidden", [(6,), (6, 5), (7, 6, 5)])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("cuts", [None, [0, 4, 8], [0, 2, 5, 9]])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_fast_step_computes_what_the_plain_step_does(hidden, activation, cuts, dtype):
    # Workspace._fast_step (fused plain SGD without batch norm, dropout, weight decay or
    # shifted inputs) makes the same calls as the plain step: the same weights and outputs,
    # bit for bit, step after step, with and without column blocks
    from hpsearch.mlp import _blas

    if _blas.update_kernel(dtype) is None:
        pytest.skip("no BLAS kernel passed the probe here")
    rng = np.random.default_rng(0)
    x = rng.random((40, 12)).astype(dtype)
    x[:, :8][rng.random((40, 8)) < 0.7] = 0.0  # leading zeros: the blocks skip some rows
    y = rng.integers(0, 3, 40)
    config = MLPConfig(hidden=hidden, activation=activation, lr=0.1, batch_size=8, dtype=dtype)
    fast, plain = (_steps(config, x, y, f, cuts) for f in (True, False))
    np.testing.assert_array_equal(fast[0], plain[0])
    np.testing.assert_array_equal(fast[1], plain[1])
    # a blow-up is reported at the same stage: hidden layer 2's product, the output layer's
    big = 1e20 if dtype == "float32" else 1e160
    for layer in range(len(hidden) + 1):
        blown = [
            _steps(config.replace(activation="identity"), x * big, y, f, cuts, scale_w=(layer, big))
            for f in (True, False)
        ]
        if isinstance(blown[1][1], str):
            assert blown[0] == blown[1]
        if layer == 0:  # the blocks' products through ctypes too: their flags are read
            assert blown[0] == ("overflow", "forward layer 1")
        else:  # the same inf and nan where nothing raised (a BLAS product's overflow, say)
            np.testing.assert_array_equal(blown[0][0], blown[1][0])
            np.testing.assert_array_equal(blown[0][1], blown[1][1])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_workspace_fuses_the_update_of_fusable_optimizers_only(name):
    from hpsearch.mlp import _blas
    from hpsearch.mlp._workspace import Workspace

    if _blas.update_kernel("float32") is None:
        pytest.skip("no BLAS kernel passed the probe here")
    config = MLPConfig(hidden=(6,), optimizer=name, batch_size=8)
    opt = OPTIMIZERS[name].from_config(config)
    ws = Workspace(MLP(config, 5, 3), 8, train=True, grad_scale=opt.prescale)
    assert ws.fuse_sgd(opt) == opt.fusable == (name == "sgd")


@pytest.mark.parametrize(
    "changes",
    [
        {},  # plain sgd: the fused first-layer update
        {"weight_decay": 0.01, "batch_size": 100},
        {"optimizer": "adam", "lr": 0.002, "weight_decay": 0.01, "batch_size": 64},
        {"optimizer": "momentum", "lr": 0.05, "batch_norm": True, "batch_size": 100},
        # reorder="auto": no blocks (sorting a batch would change which dropout mask each row draws)
        {"optimizer": "momentum", "lr": 0.05, "batch_norm": True, "dropout": 0.2, "batch_size": 10},
        {"batch_size": 4},  # small batches: the other fused kernel
    ],
)
@pytest.mark.parametrize("constant", [0.0, 0.5])
def test_reordered_inputs_train_the_same_weights(digits, monkeypatch, changes, constant):
    # inputs constant over the training rows are left out of the first layer's products and
    # added to its bias (their weights still get c * (bias gradient) and weight decay); the
    # rows of a batch are sorted by their first nonzero input (sparsest inputs first) and
    # each column block of the inputs multiplies only the rows that are not all 0 in it
    x_train, y_train, x_val, y_val = digits
    x_train, y_train, x_val = x_train[:300].copy(), y_train[:300], x_val.copy()
    x_train[:, ::4] = constant  # 16 of 64 constant in training, and in validation for some
    x_val[:, ::8] = constant
    config = DEFAULT.replace(dtype="float64", epochs=3, **changes)
    plans, plan = [], InputOrder.plan
    monkeypatch.setattr(InputOrder, "plan", staticmethod(lambda *a, **k: plans.append(plan(*a, **k)) or plans[-1]))
    mode = "auto" if config.dropout else "always"  # always: every column block that skips anything
    reordered = train(config, x_train, y_train, x_val, y_val, train_metrics="full", reorder=mode)
    plain = train(config, x_train, y_train, x_val, y_val, train_metrics="full", reorder="never")

    n_constant = int((x_train.min(axis=0) == x_train.max(axis=0)).sum())  # >= 16: digits has a few more
    got = plans[0]
    assert got is not None and got.train.active == 64 - n_constant and len(plans) == 1
    assert 64 - n_constant < got.evaluate.active < 64 - 8
    assert (got.train.values is None) == (constant == 0.0)
    assert (got.cuts is not None) == (mode == "always") == (got.first is not None)
    if got.cuts is not None:
        assert got.blocks == len(got.cuts) > 1 and got.cuts[0] == 0 and got.skipped > 0
        assert got.first.max() > got.cuts[1]  # rows that skip whole blocks
    np.testing.assert_allclose(reordered.model.params, plain.model.params, rtol=1e-9, atol=1e-12)
    for a, b in zip(strip_seconds(reordered), strip_seconds(plain)):
        assert a == pytest.approx(b, rel=1e-9)
    np.testing.assert_array_equal(reordered.model.predict(x_val), plain.model.predict(x_val))


def test_folded_inputs_leave_the_weights_in_data_order(digits):
    # inputs 0-7 are 0 in every training row: without weight decay their weights keep
    # their initial values, which must come back in the columns' order
    x_train, y_train, x_val, y_val = digits
    x_train = x_train.copy()
    x_train[:, :8] = 0.0
    initial = MLP(DEFAULT, 64, 10, rng=np.random.default_rng(DEFAULT.seed).spawn(3)[0]).W[0]
    for keep_best in (False, True):
        history = train(DEFAULT.replace(epochs=2), x_train, y_train, x_val, y_val, keep_best=keep_best)
        np.testing.assert_array_equal(history.model.W[0][:8], initial[:8])
        assert not np.array_equal(history.model.W[0][8:], initial[8:])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("source", ["scipy_gemm", None])
def test_column_blocks_without_numpys_cblas_train_the_same_weights(digits, monkeypatch, source, optimizer):
    # without numpy's cblas symbols the blocks' forward products accumulate through numpy,
    # and small batches update W_1 through scipy's gemm wrapper (or, with no kernel at
    # all, the plain path), which must take the blocks' row counts too
    from hpsearch.mlp import _blas, _workspace

    sources = [s for s in _blas.KERNELS.sources if s[0] == source]
    monkeypatch.setattr(_blas, "KERNELS", _blas.KernelProbe(sources))
    x_train, y_train, x_val, y_val = digits
    config = DEFAULT.replace(dtype="float64", epochs=2, batch_size=32, weight_decay=0.01, optimizer=optimizer)
    assert 32 <= _workspace.FUSE_MAX_ROWS
    kernel = _blas.update_kernel("float64")
    assert (kernel.source, kernel.product) == ("scipy_gemm", None) if source else kernel is None
    plans, plan = [], InputOrder.plan
    monkeypatch.setattr(InputOrder, "plan", staticmethod(lambda *a, **k: plans.append(plan(*a, **k)) or plans[-1]))
    blocked = train(config, x_train, y_train, x_val, y_val, reorder="always")
    assert plans[0].blocks > 1
    plain = train(config, x_train, y_train, x_val, y_val, reorder="never")
    np.testing.assert_allclose(blocked.model.params, plain.model.params, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_reordering_on_random_sparse_data_changes_nothing_but_rounding(monkeypatch, seed, shifted):
    # sparse inputs with constant columns (0 and not), all-zero rows, a short last batch,
    # odd batch sizes: every path of the reordering against the plain trainer. Shifted:
    # half the columns' most common value is their minimum, not 0 (as z-scored pixels)
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(90, 260)), int(rng.integers(20, 50))
    x = rng.standard_normal((n, d)) * (rng.random((n, d)) < rng.uniform(0.1, 0.5, d))
    x[rng.choice(n, 2, replace=False)] = 0.0
    x_val = rng.standard_normal((40, d)) * (rng.random((40, d)) < 0.3)
    shift = np.where(rng.random(d) < 0.5, rng.uniform(-2, -0.5, d), 0.0) if shifted else np.zeros(d)
    if shifted:  # minimum, then the sparse part above it
        x, x_val = np.abs(x) + shift, np.abs(x_val) + shift
    x[:, rng.choice(d, 3, replace=False)] = [0.0, 0.0, rng.uniform(-1, 1)]
    y = rng.integers(0, 3, n)
    config = MLPConfig(
        hidden=(12, 7),
        dtype="float64",
        epochs=3,
        seed=seed,
        batch_size=[16, 33, 50, 70, n + 5, 40][seed],
        optimizer=["sgd", "adam", "sgd", "rmsprop", "sgd", "momentum"][seed],
        lr=0.01,
        activation=str(rng.choice(["relu", "tanh", "softplus"])),
        weight_decay=float(rng.choice([0.0, 0.01])),
        batch_norm=seed in (2, 3),
    )
    kwargs = dict(train_metrics="full", keep_best=True)
    plans, plan = [], InputOrder.plan
    monkeypatch.setattr(InputOrder, "plan", staticmethod(lambda *a, **k: plans.append(plan(*a, **k)) or plans[-1]))
    reordered = train(config, x, y, x_val, y[:40], reorder="always", **kwargs)  # whatever it saves
    plain = train(config, x, y, x_val, y[:40], reorder="never", **kwargs)
    assert plans[0] is not None and len(plans) == 1
    assert plans[0].train.active == d - 3 and plans[0].train.values is not None
    assert (plans[0].train.offsets is not None) == shifted
    assert (plans[0].cuts is not None) == (plans[0].first is not None)
    assert plans[0].blocks > 1 and plans[0].first.max() > plans[0].cuts[1]  # rows skip whole blocks
    # atol: with batch norm the first layer's bias has zero gradient, and rmsprop / adam turn
    # the rounding left in it into steps of ~1e-9
    np.testing.assert_allclose(reordered.model.params, plain.model.params, rtol=1e-8, atol=1e-8)
    for a, b in zip(strip_seconds(reordered), strip_seconds(plain)):
        assert a == pytest.approx(b, rel=1e-8)
