"""The sharpness estimator against independent oracles, and sharpness in diverged trials."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hpsearch.mlp import MLP, MLPConfig, sharpness, stability_limit
from hpsearch.mlp._sharpness import HessianProbe, top_eigenvalue

# ---------------------------------------------------------------- an independent small network
# Plain NumPy, written here from the definitions: logits = layers of a @ W + b with the
# activation between them, mean softmax cross-entropy, weight decay on the weights.


def _act(name, alpha):
    if name == "tanh":
        return np.tanh
    return lambda u: np.where(u > 0, u, alpha * u)


def _unpack(theta, sizes):
    out, at = [], 0
    for fan_in, fan_out in itertools.pairwise(sizes):
        block = theta[at : at + (fan_in + 1) * fan_out].reshape(fan_in + 1, fan_out)
        out.append((block[:fan_in], block[fan_in]))
        at += (fan_in + 1) * fan_out
    return out


def _logits(theta, x, sizes, f, slopes=None):
    a = x
    layers = _unpack(theta, sizes)
    for i, (W, b) in enumerate(layers):
        a = a @ W + b
        if i < len(layers) - 1:
            a = a * slopes[i] if slopes is not None else f(a)
    return a


def _slopes(theta, x, sizes, alpha):
    """Each hidden unit's leaky-ReLU slope (1 or alpha) per row at ``theta``: with them frozen the
    network is the same function near ``theta`` without kinks (no unit sits on one), so second
    differences of the loss give the Hessian where it exists."""
    out, a = [], x
    for W, b in _unpack(theta, sizes)[:-1]:
        u = a @ W + b
        out.append(np.where(u > 0, 1.0, alpha))
        a = u * out[-1]
    return out


def _loss(theta, x, y, sizes, f, wd, mask, slopes=None):
    z = _logits(theta, x, sizes, f, slopes)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean() + 0.5 * wd * float(theta @ (mask * theta))


def _weight_mask(sizes):
    mask = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        m = np.ones((fan_in + 1, fan_out))
        m[fan_in] = 0.0
        mask.append(m.ravel())
    return np.concatenate(mask)


def _gauss_newton(theta, x, y, sizes, f, wd, mask, eps=1e-6):
    """``mean_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i + wd·diag(mask)``, J by central differences."""
    n = theta.size
    J = np.empty((len(x), sizes[-1], n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        J[:, :, j] = (_logits(theta + e, x, sizes, f) - _logits(theta - e, x, sizes, f)) / (2 * eps)
    z = _logits(theta, x, sizes, f)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    G = np.zeros((n, n))
    for i in range(len(x)):
        H = np.diag(p[i]) - np.outer(p[i], p[i])
        G += J[i].T @ H @ J[i]
    return G / len(x) + wd * np.diag(mask)


def _hessian(theta, x, y, sizes, f, wd, mask, eps=1e-4, slopes=None):
    """The full Hessian by second differences of the loss (leaky ReLU: with ``slopes`` frozen)."""
    n = theta.size
    H = np.empty((n, n))

    def L(t):
        return _loss(t, x, y, sizes, f, wd, mask, slopes)

    for i in range(n):
        for j in range(i, n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = eps, eps
            H[i, j] = H[j, i] = (L(theta + ei + ej) - L(theta + ei - ej) - L(theta - ei + ej) + L(theta - ei - ej)) / (
                4 * eps * eps
            )
    return H


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 4))
    y = rng.integers(0, 3, 30)
    return x, y


# ---------------------------------------------------------------- Lanczos itself


def test_top_eigenvalue_of_a_symmetric_matrix_with_known_spectrum_including_negative_ones():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    spectrum = np.concatenate([[7.5, 7.0, 3.0], rng.uniform(-9.0, 2.0, 57)])  # largest |λ| is negative
    A = (q * spectrum) @ q.T
    value, used, converged = top_eigenvalue(lambda v: A @ v, 60, np.random.default_rng(1))
    assert converged and used <= 60
    assert value == pytest.approx(7.5, rel=1e-6)


# ---------------------------------------------------------------- the network's curvature


@pytest.mark.parametrize(
    "activation, weight_decay", [("tanh", 0.0), ("tanh", 0.05), ("leaky_relu", 0.0), ("leaky_relu", 0.05)]
)
def test_sharpness_is_the_top_eigenvalue_of_the_exact_hessian(blobs, activation, weight_decay):
    x, y = blobs
    config = MLPConfig(
        hidden=(5, 4), activation=activation, alpha=0.1, weight_decay=weight_decay, dtype="float64", seed=2
    )
    model = MLP(config, 4, 3, rng=np.random.default_rng(2))
    sizes, theta = model.sizes, model.params.copy()
    slopes = _slopes(theta, x, sizes, 0.1) if activation == "leaky_relu" else None
    H = _hessian(theta, x, y, sizes, _act(activation, 0.1), weight_decay, _weight_mask(sizes), slopes=slopes)
    exact = np.linalg.eigvalsh((H + H.T) / 2)[-1]
    est = sharpness(model, x, y, rng=np.random.default_rng(3))
    assert est.converged
    assert est.value == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("activation, weight_decay", [("tanh", 0.0), ("leaky_relu", 0.05)])
def test_gauss_newton_products_give_the_top_eigenvalue_of_the_gauss_newton_matrix(blobs, activation, weight_decay):
    x, y = blobs
    config = MLPConfig(
        hidden=(5, 4), activation=activation, alpha=0.1, weight_decay=weight_decay, dtype="float64", seed=2
    )
    model = MLP(config, 4, 3, rng=np.random.default_rng(2))
    sizes = model.sizes
    G = _gauss_newton(model.params.copy(), x, y, sizes, _act(activation, 0.1), weight_decay, _weight_mask(sizes))
    exact = np.linalg.eigvalsh((G + G.T) / 2)[-1]
    probe = HessianProbe(model, x, y)
    value, _, converged = top_eigenvalue(probe.gnvp, probe.theta.size, np.random.default_rng(0))
    assert converged
    assert value == pytest.approx(exact, rel=1e-5)


def test_sharpness_leaves_the_model_unchanged_and_works_on_float32_models(blobs):
    x, y = blobs
    model = MLP(MLPConfig(hidden=(6,), seed=1), 4, 3, rng=np.random.default_rng(1))
    before = model.params.copy()
    est = sharpness(model, x.astype(np.float32), y)
    assert np.array_equal(model.params, before)
    assert est.value > 0 and est.products >= 1


def test_sharpness_with_batch_norm_and_dropout_is_deterministic_for_a_seed(blobs):
    x, y = blobs
    model = MLP(MLPConfig(hidden=(6, 5), batch_norm=True, dropout=0.2, seed=1), 4, 3, rng=np.random.default_rng(1))
    a = sharpness(model, x, y, rng=np.random.default_rng(7)).value
    b = sharpness(model, x, y, rng=np.random.default_rng(7)).value
    assert a == b and a > 0


@pytest.mark.parametrize(
    "optimizer, extra, limit",
    [
        ("sgd", {}, 2.0),
        ("momentum", {"momentum": 0.9}, 3.8),
        ("momentum", {"momentum": 0.5}, 3.0),
        ("adam", {}, None),
        ("rmsprop", {}, None),
        ("adagrad", {}, None),
    ],
)
def test_stability_limit_of_each_optimizer(optimizer, extra, limit):
    assert stability_limit(MLPConfig(optimizer=optimizer, **extra)) == limit


def test_a_unit_sitting_on_its_kink_does_not_spike_the_estimate(blobs, monkeypatch):
    # a leaky-ReLU unit whose input is 1e-9 for one row: ±εv straddles its kink, and the
    # plain central difference of the gradient would jump by O(1/ε) there
    import hpsearch.mlp._sharpness as sharpness_module

    x, y = blobs
    config = MLPConfig(hidden=(5, 4), activation="leaky_relu", alpha=0.1, dtype="float64", seed=2)
    model = MLP(config, 4, 3, rng=np.random.default_rng(2))
    model.b[0][0] = 1e-9 - float(x[0] @ model.W[0][:, 0])
    sizes, theta = model.sizes, model.params.copy()
    slopes = _slopes(theta, x, sizes, 0.1)
    H = _hessian(theta, x, y, sizes, None, 0.0, _weight_mask(sizes), eps=1e-6, slopes=slopes)
    exact = np.linalg.eigvalsh((H + H.T) / 2)[-1]
    monkeypatch.setattr(sharpness_module, "FD_STEP", 1e-5)  # wide enough to cross that kink every time
    est = sharpness(model, x, y, rng=np.random.default_rng(3))
    assert est.value == pytest.approx(exact, rel=1e-3)
    monkeypatch.setattr(sharpness_module, "RETRIES", 0)  # without the sign check: the spike
    assert sharpness(model, x, y, rng=np.random.default_rng(3)).value > 2 * exact


# ---------------------------------------------------------------- in a study

STUDY = """
[study]
name = "sharp"
dataset = "digits"
epochs = 2
seed = 0

[params]
hidden      = [ { int = [10, 40] } ]
lr          = { log_uniform = [0.3, 10.0] }
batch_size  = 32
activation  = "leaky_relu"
alpha       = { uniform = [0.0, 0.3] }
normalizer  = "min_max"
optimizer   = "sgd"
"""


def test_a_diverged_trial_carries_its_sharpness_in_trials_csv_divergence_csv_and_show(tmp_path, capsys):
    import pandas as pd

    from hpsearch import cli

    space = tmp_path / "sharp.toml"
    space.write_text(STUDY)
    out = tmp_path / "results"
    assert (
        cli.main(["run", str(space), "--trials", "6", "--jobs", "1", "--out", str(out), "-q", "--test-top", "0"]) == 0
    )
    trials = pd.read_csv(out / "sharp" / "trials.csv")
    diverged = trials[trials["prune_reason"].isin(["overflow", "nan"])]
    stable = trials[trials["state"] == "COMPLETE"]
    assert len(diverged) >= 1, "the lr range was chosen so that some trials diverge"
    assert diverged["sharpness"].notna().all() and (diverged["sharpness"] > 0).all()
    assert diverged["lr_sharpness"].to_numpy() == pytest.approx((diverged["lr"] * diverged["sharpness"]).to_numpy())
    assert (diverged["sharpness_limit"] == 2.0).all()
    assert stable["sharpness"].isna().all()  # a run that does not blow up pays nothing
    trace = pd.read_csv(out / "sharp" / "divergence.csv")
    assert "sharpness" in trace and trace["sharpness"].notna().any()
    capsys.readouterr()
    assert cli.main(["show", str(out / "sharp")]) == 0
    shown = capsys.readouterr().out
    assert "lr·λ_max" in shown and f"trial {int(diverged['number'].iloc[0])}: lr·λ_max" in shown


@pytest.mark.parametrize("reorder", ["never", "always"])
def test_the_trace_measures_the_same_sharpness_whatever_the_input_order(reorder):
    # the trainer reorders W_1's rows (and folds constant inputs) for speed: the probe batch
    # must follow, or the sharpness would be that of another network
    from hpsearch import data as datasets
    from hpsearch.errors import Diverged
    from hpsearch.mlp import train

    ds = datasets.load("digits")
    x = ds.x_train / 16.0  # digits have constant (all-zero) pixels: the plan folds them
    config = MLPConfig(hidden=(24,), activation="leaky_relu", alpha=0.2, batch_size=32, lr=6.0, epochs=2, seed=4)
    with pytest.raises(Diverged) as info:
        train(config, x[:1000], ds.y_train[:1000], x[1000:], ds.y_train[1000:], reorder=reorder)
    first = info.value.trace[0]
    assert first["step"] == 1 and first["sharpness"] is not None
    # λ_max at initialization, measured here from scratch on the trainer's model and probe batch
    model = MLP(config, x.shape[1], 10, rng=np.random.default_rng(config.seed).spawn(3)[0])
    from hpsearch.mlp._sharpness import probe_rows

    idx = probe_rows(1000, np.random.default_rng([config.seed, 1]))
    assert first["sharpness"] == pytest.approx(sharpness(model, x[idx], ds.y_train[idx]).value, rel=1e-6)
