"""Training throughput of the hpsearch MLP core against a textbook NumPy loop and PyTorch eager.

Layers 784-100-50-10, relu, plain SGD, cross-entropy, on MNIST digits (the t10k files
in /work/shared/data/mnist-t10k when present, else random MNIST-shaped data): 8,000
training and 2,000 validation rows. One BLAS thread for everyone. Each contender runs
whole epochs including what it does per epoch besides training:

- hpsearch: ``hpsearch.mlp.train`` -- running train metrics + a validation pass per epoch;
- hp-dense: the same with its input reordering switched off (no constant inputs folded
  into the bias, no row groups skipping zeros): what the reordering is worth on this data;
- textbook: the "deep learning from scratch" loop -- float64 weights, layers that
  allocate, concatenate-and-shuffle each epoch, fancy indexing, full train + test
  accuracy each epoch;
- torch: nn.Sequential + optim.SGD eager loop, a validation pass per epoch (optional).

Every contender is timed the same way: from the data arrays to the trained model, its
set-up included (``train`` builds its model and targets inside; the baselines' model,
optimizer and one-hot targets are built inside their timed region too), after one
untimed warm-up run of its own. Samples/s = training rows processed per second of wall
time, best of ``--repeats`` rounds in which the contenders take turns.

    python scripts/bench_core.py [--quick] [--batches 10 100 1000] [--normalizer z_score/per_feature]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpsearch.mlp import MLPConfig, _reorder, train  # noqa: E402

MNIST = Path("/work/shared/data/mnist-t10k")
LAYERS = (784, 100, 50, 10)
LR = 0.1


def load_data(n_train: int, n_val: int, seed: int = 0):
    """MNIST t10k (scaled to [0, 1]) if the files exist, else uniform random data."""
    images, labels = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
    rng = np.random.default_rng(seed)
    if images.exists() and labels.exists():
        with gzip.open(images) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
        with gzip.open(labels) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
        x = x.astype(np.float32) / 255.0
        source = "MNIST t10k"
    else:
        x = rng.random((10_000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 10_000)
        source = "random MNIST-shaped"
    order = rng.permutation(len(x))[: n_train + n_val]
    x, y = x[order], y[order]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], source


# --- contender 1: hpsearch ------------------------------------------------------------
def run_hpsearch(data, batch: int, epochs: int, reorder: bool = True) -> float:
    xt, yt, xv, yv = data
    config = MLPConfig(hidden=LAYERS[1:-1], activation="relu", optimizer="sgd", lr=LR,
                       batch_size=batch, epochs=epochs, seed=0)
    t0 = time.perf_counter()
    train(config, xt, yt, xv, yv, reorder="auto" if reorder else "never")
    return time.perf_counter() - t0


def input_plan(data, batch: int, epochs: int) -> str:
    """What the trainer's input reordering does with this data at this batch size."""
    from hpsearch.mlp import MLP

    xt, _, xv, _ = data
    constant = xt.min(axis=0) == xt.max(axis=0)
    config = MLPConfig(hidden=LAYERS[1:-1], batch_size=batch, epochs=epochs)
    plan = _reorder.InputOrder.plan(MLP(config, xt.shape[1], 10), xt, constant, xt.min(axis=0), xv, batch, epochs)
    if plan is None:
        return "not reordered (too little to save in this run)"
    k = plan.train.active
    x = plan.training_inputs(xt)
    skip = _reorder._expected_skip(plan.first, batch, plan.groups, k) if plan.groups > 1 else 0.0
    products = (1 - skip) * k / xt.shape[1]
    return (f"{xt.shape[1] - k} of {xt.shape[1]} inputs constant (folded into the bias); "
            f"{plan.groups} row group{'s' if plan.groups > 1 else ''} per batch skip {skip:.0%} of "
            f"the rest: layer-1 products over {products:.0%} of the inputs ({x.shape[1]} kept)")


# --- contender 2: the textbook loop ------------------------------------------------------
class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return np.dot(dout, self.W.T)


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class SoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        x = x - x.max(axis=1, keepdims=True)
        self.y = np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)
        return -np.sum(t * np.log(self.y + 1e-7)) / x.shape[0]

    def backward(self):
        return (self.y - self.t) / self.t.shape[0]


class TextbookNet:
    def __init__(self, sizes, seed=0):
        rng = np.random.RandomState(seed)
        self.params = {}
        self.layers = OrderedDict()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
            self.params[f"W{i}"] = rng.randn(a, b) * np.sqrt(2.0 / a)  # float64, as in the book
            self.params[f"b{i}"] = np.zeros(b)
            self.layers[f"Affine{i}"] = Affine(self.params[f"W{i}"], self.params[f"b{i}"])
            if i < len(sizes) - 1:
                self.layers[f"Relu{i}"] = Relu()
        self.last = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last.forward(self.predict(x), t)

    def accuracy(self, x, t):
        return np.mean(np.argmax(self.predict(x), axis=1) == np.argmax(t, axis=1))

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last.backward()
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        grads = {}
        for i in range(1, len(self.params) // 2 + 1):
            grads[f"W{i}"] = self.layers[f"Affine{i}"].dW
            grads[f"b{i}"] = self.layers[f"Affine{i}"].db
        return grads


def run_textbook(data, batch: int, epochs: int) -> float:
    xt, yt, xv, yv = data
    t0 = time.perf_counter()
    tt, tv = np.eye(10)[yt], np.eye(10)[yv]
    net = TextbookNet(LAYERS)
    rng = np.random.RandomState(0)
    n = len(xt)
    for _ in range(epochs):
        both = np.concatenate([xt, tt], axis=1)
        rng.shuffle(both)
        for start in range(0, n, batch):
            idx = np.arange(start, min(start + batch, n))
            xb, tb = both[idx, :784], both[idx, 784:]
            grads = net.gradient(xb, tb)
            for key in net.params:
                net.params[key] -= LR * grads[key]
        net.accuracy(xt, tt)
        net.accuracy(xv, tv)
    return time.perf_counter() - t0


# --- contender 3: PyTorch eager ----------------------------------------------------------
def torch_runner():
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(1)

    def run(data, batch: int, epochs: int) -> float:
        t0 = time.perf_counter()
        xt, yt, xv, yv = (torch.from_numpy(np.ascontiguousarray(a)) for a in data)
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 100), torch.nn.ReLU(),
            torch.nn.Linear(100, 50), torch.nn.ReLU(),
            torch.nn.Linear(50, 10))
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        n = len(xt)
        for _ in range(epochs):
            perm = torch.randperm(n)
            model.train()
            for start in range(0, n, batch):
                idx = perm[start:start + batch]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            model.eval()
            with torch.inference_mode():
                out = model(xv)
                loss_fn(out, yv).item()
                (out.argmax(1) == yv).float().mean().item()
        return time.perf_counter() - t0

    return run, torch.__version__


def step_breakdown(batch: int, repeats: int) -> dict:
    """Microseconds per training step of hpsearch (warm, one batch reused) and of its parts.

    ``layer-1 GEMMs`` are the two products with the 784-wide input (forward, and the
    weight gradient -- for small batches fused with the SGD update of those weights);
    ``update`` is the optimizer's subtraction over the remaining parameters (all of them
    when not fused); ``rest`` is everything else: bias, activations, softmax, dispatch.
    """
    import timeit

    from hpsearch.mlp._network import MLP
    from hpsearch.mlp._optimizers import SGD
    from hpsearch.mlp._workspace import Workspace
    from hpsearch.mlp._train import _scaled_targets

    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch).astype(np.intp)
    config = MLPConfig(hidden=LAYERS[1:-1], lr=LR, batch_size=batch)
    model = MLP(config, 784, 10, rng=rng)
    opt = SGD(LR)
    ws = Workspace(model, batch, train=True, rng=rng, grad_scale=opt.prescale)
    fused = ws.fuse_sgd(opt)
    ws.load(x, _scaled_targets(y, 10, np.float32, ws.scale), np.arange(batch))
    (h1, h2), dWb = ws.layers, model.dWb
    number = max(20, 20_000 // batch)

    def us(fn):
        return min(timeit.repeat(fn, number=number, repeat=max(repeats, 3))) / number * 1e6

    if fused:
        layer1_grad, rest_p, rest_g = ws.fused[1:4]
        update = lambda: opt.update(rest_p, rest_g)  # noqa: E731
    else:
        layer1_grad = lambda: ws.xT.dot(ws.g1T, out=model.dW[0])  # noqa: E731
        update = lambda: opt.update(model.params, model.grads)  # noqa: E731
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        ws.train_step(opt)
        parts = {
            "step": us(lambda: ws.train_step(opt)),
            "layer-1 GEMMs": us(lambda: (h1.forward_dot(ws.x, out=ws.u1T), layer1_grad())),
            "other GEMMs": us(lambda: (h2.forward_dot(h1.aug, out=h2.u), ws.out_dot(h2.aug, out=ws.out),
                                       ws.out_grad_dot(ws.deltaT, out=dWb[2]), ws.out_back_dot(ws.delta, out=h2.g),
                                       h2.grad_dot(h2.gT, out=dWb[1]), h2.back_dot(h2.g, out=h1.g),
                                       h1.bias_grad_dot(out=model.db[0]))),
            "update": us(update),
        }
    parts["rest"] = parts["step"] - parts["layer-1 GEMMs"] - parts["other GEMMs"] - parts["update"]
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer rows, 1 repeat)")
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--normalizer", default=None, metavar="NAME/AXIS",
                        help="normalize the [0, 1] pixels first with hpsearch's normalizer, e.g. "
                             "z_score/per_feature (fitted on the training rows; default: none)")
    args = parser.parse_args(argv)
    n_train, n_val = (2000, 500) if args.quick else (8000, 2000)
    repeats = args.repeats or (1 if args.quick else 5)
    xt, yt, xv, yv, source = load_data(n_train, n_val)
    if args.normalizer:
        from hpsearch.data import fit_normalizer

        name, _, axis = args.normalizer.partition("/")
        normalize = fit_normalizer(name, axis or "global", xt)
        xt, xv, source = normalize(xt), normalize(xv), f"{source}, {normalize!r}"
    data = (xt, yt, xv, yv)
    run_torch, torch_version = (None, None) if args.no_torch else torch_runner()

    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch_version or 'not installed'}")
    print(f"data: {source}, {n_train} train / {n_val} validation rows; layers "
          f"{'-'.join(map(str, LAYERS))} relu sgd lr={LR}; 1 BLAS thread; best of {repeats}, interleaved")
    print("env: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    print("\ntraining throughput, samples/s (higher is better)")
    header = (f"{'batch':>5} {'epochs':>6} | {'hpsearch':>9} {'hp-dense':>9} {'textbook':>9} "
              f"{'torch':>9} | {'hp/textbook':>11} {'hp/torch':>8}")
    print(header)
    print("-" * len(header))
    breakdown, plans = {}, {}
    with threadpool_limits(limits=1):
        for batch in args.batches:
            # about the same wall time per contender whatever the batch size
            epochs = max(1, {10: 1, 100: 3}.get(batch, 6) // (3 if args.quick else 1))
            plans[batch] = epochs
            contenders = {
                "hpsearch": lambda: run_hpsearch(data, batch, epochs),
                "hp-dense": lambda: run_hpsearch(data, batch, epochs, reorder=False),
                "textbook": lambda: run_textbook(data, batch, epochs),
            }
            if run_torch is not None:
                contenders["torch"] = lambda: run_torch(data, batch, epochs)
            for name, fn in contenders.items():  # warm-up, untimed: one run each
                fn()
            best = {name: float("inf") for name in contenders}
            for _ in range(repeats):  # round-robin: a noisy neighbour hurts everyone alike
                for name, fn in contenders.items():
                    best[name] = min(best[name], fn())
            rate = {name: n_train * epochs / seconds for name, seconds in best.items()}
            th = rate.get("torch", float("nan"))
            print(f"{batch:>5} {epochs:>6} | {rate['hpsearch']:>9,.0f} {rate['hp-dense']:>9,.0f} "
                  f"{rate['textbook']:>9,.0f} {th:>9,.0f} | {rate['hpsearch'] / rate['textbook']:>10.2f}x "
                  f"{rate['hpsearch'] / th:>7.2f}x", flush=True)
            breakdown[batch] = step_breakdown(batch, repeats)
    print("hp-dense = hpsearch with its input reordering off")
    print("\ninput reordering on this data:")
    for batch, epochs in plans.items():
        print(f"  batch {batch:>4}: {input_plan(data, batch, epochs)}")
    print("\nwhere one dense hpsearch step goes (784 inputs, nothing skipped; warm, microseconds per step)")
    cols = list(next(iter(breakdown.values())))
    print(f"{'batch':>5} | " + " ".join(f"{c:>13}" for c in cols) + " | layer-1 GEMM share")
    for batch, parts in breakdown.items():
        share = parts["layer-1 GEMMs"] / parts["step"]
        print(f"{batch:>5} | " + " ".join(f"{parts[c]:>13.1f}" for c in cols) + f" | {share:>17.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
