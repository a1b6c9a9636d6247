"""Activations, losses, initializers, optimizers and the gradient check, each against an oracle."""

import math

import numpy as np
import pytest
from scipy.special import log_softmax

from hpsearch.mlp import ACTIVATIONS, BIAS_INITIALIZERS, INITIALIZERS, LOSSES, OPTIMIZERS, MLPConfig, gradient_check
from hpsearch.mlp._activations import Activation

GRAD_TOL = 1e-6  # max relative error, backprop vs central differences in float64

# independent float64 oracles of each activation (written without the library's tricks)
ORACLES = {
    "sigmoid": lambda u: 1 / (1 + np.exp(-u)),
    "tanh": np.tanh,
    "relu": lambda u: np.where(u > 0, u, 0.0),
    "leaky_relu": lambda u: np.where(u > 0, u, 0.2 * u),
    "identity": lambda u: u,
    "softplus": lambda u: np.log(1 + np.exp(u)),
    "softsign": lambda u: u / (1 + np.abs(u)),
    "step": lambda u: (u > 0).astype(float),
}


def make_activation(name):
    return ACTIVATIONS[name].from_config(MLPConfig(activation=name, alpha=0.2))


def run_activation(act, u):
    f, cache, out = np.empty_like(u), np.empty_like(u), np.empty_like(u)
    act.forward(u, f, cache)
    act.backward(u, f, cache, np.ones_like(u), out)
    return f, out


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_oracle_and_its_derivative_matches_central_differences(name):
    u = np.linspace(-4.1, 3.9, 41)  # never exactly at the kink 0
    act = make_activation(name)
    f, fprime = run_activation(act, u)
    np.testing.assert_allclose(f, ORACLES[name](u), rtol=1e-12, atol=1e-12)
    h = 1e-6
    numeric = (ORACLES[name](u + h) - ORACLES[name](u - h)) / (2 * h)
    np.testing.assert_allclose(fprime, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_is_safe_for_huge_inputs(name, dtype):
    u = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        f, fprime = run_activation(make_activation(name), u)
    assert np.isfinite(f).all() and np.isfinite(fprime).all()


def test_sigmoid_and_softplus_saturate_exactly():
    sig, _ = run_activation(make_activation("sigmoid"), np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(sig, [0.0, 1.0])
    sp, _ = run_activation(make_activation("softplus"), np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(sp, [0.0, 1000.0])


def test_step_has_zero_gradient_and_says_so():
    _, fprime = run_activation(make_activation("step"), np.linspace(-2, 2, 9))
    assert not fprime.any()
    assert ACTIVATIONS["step"].zero_gradient
    assert not ACTIVATIONS["relu"].zero_gradient


def test_leaky_relu_repr_shows_alpha():
    assert repr(ACTIVATIONS["leaky_relu"](0.13)) == "leaky_relu(0.13)"


# -- losses: the training path (fm_*: feature-major, one column per sample) --------------
LOSS_TOL = {np.float64: 1e-7, np.float32: 2e-5}  # against float64 oracles


def loss_oracle(name, o, y):
    """Summed loss of outputs ``o`` (K, rows) against labels ``y``, plainly, in float64."""
    o = np.asarray(o, np.float64)
    if name == "cross_entropy":
        return float(-log_softmax(o, axis=0)[y, np.arange(len(y))].sum())
    return float(0.5 * ((o - np.eye(o.shape[0])[:, y]) ** 2).sum())


def numeric_gradient(name, o, y, h=1e-6):
    """Central differences of the oracle: d(summed loss)/do, shape (K, rows)."""
    o = np.asarray(o, np.float64)
    grad = np.empty_like(o)
    for idx in np.ndindex(o.shape):
        up, down = o.copy(), o.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (loss_oracle(name, up, y) - loss_oracle(name, down, y)) / (2 * h)
    return grad


def fm_delta_of(name, o, y, scale, fast):
    loss = LOSSES[name]()
    k, rows = o.shape
    ts = np.zeros_like(o)
    ts[y, np.arange(rows)] = scale
    delta = np.empty_like(o)
    ws = loss.fm_workspace(rows, k, o.dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        (loss.fm_delta_fast if fast else loss.fm_delta)(o, ts, ws, delta, o.dtype.type(scale))
    return delta


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_fm_delta_is_scale_times_the_numeric_gradient_of_the_summed_loss(name, dtype, fast):
    rng = np.random.default_rng(0)
    o, y = (rng.standard_normal((4, 7)) * 3).astype(dtype), rng.integers(0, 4, 7)
    scale = 0.25 / 7  # a learning rate over the batch size
    want = scale * numeric_gradient(name, o.astype(np.float64), y)
    np.testing.assert_allclose(fm_delta_of(name, o, y, scale, fast), want, rtol=0, atol=LOSS_TOL[dtype] * scale * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_fm_total_is_the_summed_loss_for_any_leading_axes(name, dtype):
    rng = np.random.default_rng(1)
    o, y = (rng.standard_normal((3, 5, 6)) * 4).astype(dtype), rng.integers(0, 5, (3, 6))
    want = sum(loss_oracle(name, o[i].astype(np.float64), y[i]) for i in range(3))
    assert LOSSES[name]().fm_total(o, y) == pytest.approx(want, rel=LOSS_TOL[dtype])
    assert LOSSES[name]().fm_total(o[0], y[0]) == pytest.approx(loss_oracle(name, o[0], y[0]), rel=LOSS_TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_is_safe_for_huge_and_tiny_logits(dtype):
    # column 0 would overflow exp, column 1 underflows to 0 in every class: the fast path
    # falls back to the shifted softmax and gives the exact gradient
    o = np.array([[1e4, -3e4, 0.0], [-1e4, -3e4 + 5, 1.0], [0.0, -3e4 + 1, 2.0]], dtype)
    y = np.array([1, 1, 2])
    want = np.exp(log_softmax(o.astype(np.float64), axis=0)) - np.eye(3)[:, y]
    for fast in (False, True):
        np.testing.assert_allclose(fm_delta_of("cross_entropy", o, y, 1.0, fast), want, atol=1e-6)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        total = LOSSES["cross_entropy"]().fm_total(o, y)
    assert total == pytest.approx(loss_oracle("cross_entropy", o, y), rel=1e-6)
    by_hand = 2e4 + math.log(1 + math.exp(-5) + math.exp(-4)) + math.log(1 + math.exp(-1) + math.exp(-2))
    assert total == pytest.approx(by_hand, rel=1e-6)


def test_an_infinite_total_loss_raises_instead_of_returning_inf():
    with pytest.raises(FloatingPointError, match="overflow"):
        LOSSES["mean_squared_error"]().fm_total(np.array([[1e300], [0.0]]), np.array([0]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_output_is_softmax_or_identity_row_major(name):
    u = np.random.default_rng(2).standard_normal((5, 3)) * 5
    loss = LOSSES[name]()
    out = np.empty_like(u)
    loss.output(u, loss.workspace(5, 3, u.dtype), out)
    np.testing.assert_allclose(out, np.exp(log_softmax(u, axis=1)) if name == "cross_entropy" else u, rtol=1e-12)


# -- initializers ---------------------------------------------------------------------
FAN_IN, FAN_OUT = 400, 300
CFG = MLPConfig(
    init_mean=0.5, init_std=0.2, init_low=-0.3, init_high=0.1, bias_mean=-1.0, bias_std=0.5, bias_low=2.0, bias_high=3.0
)
INIT_STATS = {  # name: (mean, std) of the distribution
    "lecun_normal": (0.0, math.sqrt(1 / FAN_IN)),
    "lecun_uniform": (0.0, math.sqrt(1 / FAN_IN)),
    "glorot_normal": (0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "glorot_uniform": (0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "he_normal": (0.0, math.sqrt(2 / FAN_IN)),
    "he_uniform": (0.0, math.sqrt(2 / FAN_IN)),
    "normal": (0.5, 0.2),
    "uniform": (-0.1, 0.4 / math.sqrt(12)),
    "zeros": (0.0, 0.0),
    "ones": (1.0, 0.0),
}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_weight_initializer_statistics(name):
    w = INITIALIZERS[name](np.random.default_rng(0), FAN_IN, FAN_OUT, CFG, np.float32)
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    mean, std = INIT_STATS[name]
    assert w.mean() == pytest.approx(mean, abs=0.01 * max(std, 0.1))
    assert w.std() == pytest.approx(std, rel=0.02, abs=1e-12)
    if "uniform" in name:  # bounds: +-sqrt(3) std around the mean
        assert np.abs(w - mean).max() <= math.sqrt(3) * std * (1 + 1e-6)


@pytest.mark.parametrize(
    "name, mean, std",
    [
        ("zeros", 0.0, 0.0),
        ("ones", 1.0, 0.0),
        ("normal", -1.0, 0.5),
        ("uniform", 2.5, 1 / math.sqrt(12)),
    ],
)
def test_bias_initializer_statistics(name, mean, std):
    b = BIAS_INITIALIZERS[name](np.random.default_rng(0), 10, 50_000, CFG, np.float64)
    assert b.shape == (50_000,)
    assert b.mean() == pytest.approx(mean, abs=0.02)
    assert b.std() == pytest.approx(std, rel=0.02, abs=1e-12)


# -- optimizers -----------------------------------------------------------------------
def one_step(name, p, g, **hp):
    config = MLPConfig(optimizer=name, **hp)
    opt = OPTIMIZERS[name].from_config(config)
    p = np.array(p, float)
    opt.update(p, np.array(g, float) * opt.prescale)
    return p


@pytest.mark.parametrize(
    "name, hp, expected",
    [
        ("sgd", {"lr": 0.1}, [1.0 - 0.1 * 2.0, -1.0 - 0.1 * -0.5]),
        # v = -lr g ; p += v
        ("momentum", {"lr": 0.1, "momentum": 0.9}, [1.0 - 0.2, -1.0 + 0.05]),
        # h = g^2 ; p -= lr g / (sqrt(h) + eps) = lr sign(g) (up to eps)
        ("adagrad", {"lr": 0.1, "eps": 1e-8}, [1.0 - 0.1 * 2 / (2 + 1e-8), -1.0 + 0.1 * 0.5 / (0.5 + 1e-8)]),
        # h = (1 - rho) g^2
        (
            "rmsprop",
            {"lr": 0.1, "rho": 0.9, "eps": 1e-8},
            [1.0 - 0.1 * 2 / (math.sqrt(0.1 * 4) + 1e-8), -1.0 + 0.1 * 0.5 / (math.sqrt(0.1 * 0.25) + 1e-8)],
        ),
        # first step: m_hat = g, v_hat = g^2 -> p -= lr g / (|g| + eps)
        ("adam", {"lr": 0.1, "eps": 1e-8}, [1.0 - 0.1 * 2 / (2 + 1e-8), -1.0 + 0.1 * 0.5 / (0.5 + 1e-8)]),
    ],
)
def test_optimizer_first_step_matches_hand_computed_update(name, hp, expected):
    np.testing.assert_allclose(one_step(name, [1.0, -1.0], [2.0, -0.5], **hp), expected, rtol=1e-12)


def test_momentum_second_step_accumulates_velocity():
    opt = OPTIMIZERS["momentum"](0.1, 0.9)
    p = np.zeros(1)
    opt.update(p, np.ones(1))
    opt.update(p, np.ones(1))
    assert p[0] == pytest.approx(-0.1 + (-0.09 - 0.1))


@pytest.mark.parametrize(
    "name, lr", [("sgd", 0.1), ("momentum", 0.05), ("adagrad", 0.5), ("rmsprop", 0.05), ("adam", 0.1)]
)
def test_optimizer_minimizes_a_convex_quadratic(name, lr):
    scales = np.array([1.0, 3.0, 0.5])
    opt = OPTIMIZERS[name].from_config(MLPConfig(optimizer=name, lr=lr))
    p = np.array([2.0, -1.5, 3.0])

    def f(p):
        return 0.5 * float(scales @ (p - 1.0) ** 2)

    start = f(p)
    for _ in range(200):
        opt.update(p, scales * (p - 1.0) * opt.prescale)
    assert f(p) < 1e-3 * start


def test_optimizer_leaves_gradient_untouched():
    for name in OPTIMIZERS:
        opt = OPTIMIZERS[name](0.1)
        g = np.array([1.0, -2.0])
        opt.update(np.zeros(2), g)
        np.testing.assert_array_equal(g, [1.0, -2.0])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_state_restored_into_a_fresh_optimizer_continues_the_same_run(name):
    # the divergence replay snapshots state() and restores it with load_state()
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4) for _ in range(6)]
    opt = OPTIMIZERS[name].from_config(MLPConfig(optimizer=name, lr=0.1))
    assert opt.state() == {"t": 0}
    p = np.ones(4)
    for g in grads[:3]:
        opt.update(p, g)
    saved = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in opt.state().items()}
    assert saved["t"] == 3 and set(saved) == {"t", *opt.state_names}
    p_saved = p.copy()
    for g in grads[3:]:
        opt.update(p, g)
    for target in (opt, OPTIMIZERS[name].from_config(MLPConfig(optimizer=name, lr=0.1))):
        target.load_state(saved)
        q = p_saved.copy()
        for g in grads[3:]:
            target.update(q, g)
        np.testing.assert_array_equal(q, p)


def test_only_plain_sgd_declares_its_update_fusable():
    assert {name for name, cls in OPTIMIZERS.items() if cls.fusable} == {"sgd"}


# -- gradient check -------------------------------------------------------------------
def small_problem(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, 5))
    y = np.array([0, 1, 2, 0, 1, 2, 1])
    return x, y


VARIANTS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.1},
    "dropout": {"dropout": 0.3},
    "batch_norm": {"batch_norm": True},
    "batch_norm+dropout": {"batch_norm": True, "dropout": 0.2},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_backprop_matches_central_differences(activation, loss, variant):
    # relu-like kinks: random normal inputs keep every pre-activation far from 0 relative
    # to the 1e-6 step for this seed (a crossing would show as a large error)
    config = MLPConfig(
        hidden=(6, 4),
        activation=activation,
        alpha=0.1,
        loss=loss,
        bias_init="normal",
        bias_std=0.1,
        **VARIANTS[variant],
    )
    x, y = small_problem()
    assert gradient_check(config, x, y) < GRAD_TOL


@pytest.mark.parametrize("hidden", [(3,), (6, 5, 4, 3)])
def test_backprop_matches_central_differences_at_any_depth(hidden):
    x, y = small_problem()
    config = MLPConfig(hidden=hidden, activation="softsign", batch_norm=True, dropout=0.1)
    assert gradient_check(config, x, y) < GRAD_TOL


def test_gradient_check_runs_in_float64_whatever_the_config_says():
    x, y = small_problem()
    assert gradient_check(MLPConfig(hidden=(5,), activation="tanh", dtype="float32"), x, y) < GRAD_TOL


class _WrongTanh(Activation):
    name = "tanh"

    def forward(self, u, out, cache):
        np.tanh(u, out=out)

    def backward(self, u, a, cache, da, out):
        np.multiply(da, 1.01 * (1 - a * a), out=out)  # 1 % off


def test_gradient_check_catches_a_wrong_derivative(monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, "tanh", _WrongTanh)
    x, y = small_problem()
    assert gradient_check(MLPConfig(hidden=(5,), activation="tanh"), x, y) > 1e-3
