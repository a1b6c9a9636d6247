"""Training throughput of the hpsearch MLP core against a careful dense NumPy trainer,
scikit-learn's MLPClassifier, a textbook NumPy loop and PyTorch eager.

Layers 784-100-50-10, relu, plain SGD (lr 0.1), cross-entropy; 8,000 training and
2,000 validation rows of one of (``--data``, several allowed):

- ``mnist``: MNIST t10k scaled to [0, 1] (about 19 % of the pixels nonzero), read from
  ``../shared/data/mnist-t10k`` next to the repository (``--mnist DIR`` to change);
  missing files are an error, never a silent substitute;
- ``blobs``: MNIST-shaped synthetic images, a few Gaussian blobs per class placed with
  jitter, thresholded so about 28 % of the pixels are nonzero (less sparse than MNIST);
- ``random``: dense uniform [0, 1) pixels, labels from a random linear teacher.

One BLAS thread for everyone. The contenders, each timed from the data arrays to the
trained model, its own set-up included, after one untimed warm-up run of its own:

- hpsearch: ``hpsearch.mlp.train`` as a trial runs it -- input checks, the input
  reordering plan, running train metrics and a validation pass every epoch;
- hp-dense: the same with ``reorder="never"``: what the reordering is worth here;
- careful: ``scripts/careful_mlp.py``, the best dense float32 NumPy trainer we could
  write without the reordering (preallocated buffers, biases in the matrices,
  feature-major activations, ``np.take(out=)`` gathers, mask multiplies, validation
  once per epoch): the bar to beat;
- sklearn: ``MLPClassifier`` (float32 data, solver="sgd", momentum=0, alpha=0, the same
  layers, batch size, learning rate and epochs), scored on the validation rows once;
- textbook: the "deep learning from scratch" loop (float64, allocating layers, full
  train + validation accuracy every epoch), ``--textbook`` to include it;
- torch: nn.Sequential + optim.SGD eager, a validation pass per epoch (when installed).

Samples/s = training rows processed per second of wall time (``--clock cpu``: of this
process's CPU time), best of ``--repeats``
rounds in which the contenders take turns; each contender's last validation accuracy
is printed too, so nobody wins by training less.

    python scripts/bench_core.py [--data mnist blobs random] [--batches 10 100 1000] [--epochs N]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import re
import sys
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from careful_mlp import train_careful  # noqa: E402

from hpsearch._args import whole  # noqa: E402
from hpsearch.errors import HPSearchError  # noqa: E402
from hpsearch.mlp import MLPConfig, _reorder, train  # noqa: E402

MNIST = Path(__file__).resolve().parents[1].parent / "shared/data/mnist-t10k"
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DATA_SETS = ("mnist", "blobs", "random")
LAYERS = (784, 100, 50, 10)
LR = 0.1
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # what every contender is timed with (--clock)


class BenchError(Exception):
    """A known problem: one line on stderr, exit status 2."""


def load_mnist(directory: Path):
    images, labels = (directory / name for name in MNIST_FILES)
    if not (images.is_file() and labels.is_file()):
        raise BenchError(
            f"MNIST not found: {directory} must hold {' and '.join(MNIST_FILES)} "
            "(pass --mnist DIR, or --data blobs / random)"
        )
    with gzip.open(images) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x.astype(np.float32) / 255.0, y


def make_blobs(n: int, rng: np.random.Generator, nonzero: float = 0.28):
    """MNIST-shaped images: per class three Gaussian blobs at fixed places, each image
    with its own jitter, width and brightness, plus faint noise; the dimmest pixels set
    to 0 so that a share ``nonzero`` of all pixels stays nonzero."""
    grid = np.stack(np.meshgrid(np.arange(28), np.arange(28), indexing="ij"), -1).reshape(-1, 2)
    centers = rng.uniform(5, 23, (10, 3, 2))
    y = rng.integers(0, 10, n)
    img = np.zeros((n, 784))
    for j in range(3):
        c = centers[y, j] + rng.normal(0, 2.0, (n, 2))
        sigma = rng.uniform(2.5, 4.5, (n, 1))
        d2 = ((grid[None, :, :] - c[:, None, :]) ** 2).sum(-1)
        img += rng.uniform(0.5, 1.0, (n, 1)) * np.exp(-d2 / (2 * sigma**2))
    img += rng.uniform(0, 0.15, img.shape)
    cut = np.quantile(img, 1 - nonzero)
    img = np.where(img > cut, img, 0.0)
    return np.clip(img / np.quantile(img[img > 0], 0.99), 0, 1).astype(np.float32), y


def load_data(kind: str, n_train: int, n_val: int, mnist: Path = MNIST, seed: int = 0):
    """``(x_train, y_train, x_val, y_val, description)`` for data set ``kind``."""
    rng = np.random.default_rng(seed)
    if kind == "mnist":
        x, y = load_mnist(mnist)
        source = f"MNIST t10k from {mnist}"
    elif kind == "blobs":
        x, y = make_blobs(n_train + n_val, rng)
        source = "MNIST-shaped synthetic blobs"
    elif kind == "random":
        x = rng.random((n_train + n_val, 784), dtype=np.float32)
        y = np.argmax((x - 0.5) @ rng.standard_normal((784, 10)), axis=1)
        source = "dense uniform random, labels from a random linear teacher"
    else:
        raise BenchError(f"unknown data set {kind!r} (allowed: {', '.join(DATA_SETS)})")
    order = rng.permutation(len(x))[: n_train + n_val]
    x, y = x[order], y[order]
    nonzero = np.count_nonzero(x) / x.size
    constant = int(np.count_nonzero(x[:n_train].min(axis=0) == x[:n_train].max(axis=0)))
    source += f" ({nonzero:.0%} of pixels nonzero, {constant} of 784 inputs constant in training)"
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], source


# --- contender 1: hpsearch ------------------------------------------------------------
def run_hpsearch(data, batch: int, epochs: int, reorder: bool = True) -> float:
    xt, yt, xv, yv = data
    config = MLPConfig(
        hidden=LAYERS[1:-1], activation="relu", optimizer="sgd", lr=LR, batch_size=batch, epochs=epochs, seed=0
    )
    t0 = clock()
    history = train(config, xt, yt, xv, yv, reorder="auto" if reorder else "never")
    return clock() - t0, history.epochs[-1]["val_accuracy"]


def run_careful(data, batch: int, epochs: int):
    xt, yt, xv, yv = data
    t0 = clock()
    accuracy = train_careful(xt, yt, xv, yv, hidden=LAYERS[1:-1], batch=batch, epochs=epochs, lr=LR, seed=0)
    return clock() - t0, accuracy


def run_sklearn(data, batch: int, epochs: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    xt, yt, xv, yv = data
    t0 = clock()
    clf = MLPClassifier(
        hidden_layer_sizes=LAYERS[1:-1],
        activation="relu",
        solver="sgd",
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=batch,
        learning_rate_init=LR,
        learning_rate="constant",
        max_iter=epochs,
        shuffle=True,
        random_state=0,
        n_iter_no_change=epochs + 1,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(xt, yt)
    seconds = clock() - t0
    assert clf.coefs_[0].dtype == np.float32, "MLPClassifier did not train in float32"
    return seconds, clf.score(xv, yv)


def input_plan(data, batch: int, epochs: int) -> str:
    """What the trainer's input reordering does with this data at this batch size."""
    from hpsearch.mlp import MLP

    xt, _, xv, _ = data
    constant = xt.min(axis=0) == xt.max(axis=0)
    config = MLPConfig(hidden=LAYERS[1:-1], batch_size=batch, epochs=epochs)
    plan = _reorder.InputOrder.plan(MLP(config, xt.shape[1], 10), xt, constant, xt[0], xv, batch, epochs)
    if plan is None:
        return "not reordered (too little to save in this run)"
    k = plan.train.active
    products = (1 - plan.skipped) * k / xt.shape[1]
    blocks = (
        f"{plan.blocks} column blocks (starting at inputs {', '.join(map(str, plan.cuts))}) skip "
        f"an estimated {plan.skipped:.0%} of the rest"
        if plan.cuts is not None
        else "no column blocks"
    )
    return (
        f"{xt.shape[1] - k} of {xt.shape[1]} inputs constant (folded into the bias); {blocks}: "
        f"layer-1 products over {products:.0%} of the inputs"
    )


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
    t0 = clock()
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
        accuracy = net.accuracy(xv, tv)
    return clock() - t0, float(accuracy)


# --- contender 3: PyTorch eager ----------------------------------------------------------
def torch_runner():
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(1)

    def run(data, batch: int, epochs: int) -> float:
        t0 = clock()
        xt, yt, xv, yv = (torch.from_numpy(np.ascontiguousarray(a)) for a in data)
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 100),
            torch.nn.ReLU(),
            torch.nn.Linear(100, 50),
            torch.nn.ReLU(),
            torch.nn.Linear(50, 10),
        )
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        n = len(xt)
        for _ in range(epochs):
            perm = torch.randperm(n)
            model.train()
            for start in range(0, n, batch):
                idx = perm[start : start + batch]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            model.eval()
            with torch.inference_mode():
                out = model(xv)
                loss_fn(out, yv).item()
                accuracy = (out.argmax(1) == yv).float().mean().item()
        return clock() - t0, accuracy

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
    from hpsearch.mlp._train import _scaled_targets
    from hpsearch.mlp._workspace import Workspace

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
        return min(timeit.repeat(fn, number=number, repeat=max(repeats, 3), timer=clock)) / number * 1e6

    if fused:
        layer1_grad, rest_p, rest_g = ws.fused[1:4]
        update = lambda: opt.update(rest_p, rest_g)  # noqa: E731
    else:
        layer1_grad = lambda: ws.xT.dot(ws.g1.T, out=model.dW[0])  # noqa: E731
        update = lambda: opt.update(model.params, model.grads)  # noqa: E731
    if ws.sample_major:  # the first layer's product in the form the trainer takes it (see Workspace)
        first_product = lambda: np.dot(ws.x, ws.W1, out=ws.u1s)  # noqa: E731
    else:
        first_product = lambda: np.dot(ws.W1T, ws.xT, out=h1.u)  # noqa: E731
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        ws.train_step(opt)
        parts = {
            "step": us(lambda: ws.train_step(opt)),
            "layer-1 GEMMs": us(lambda: (first_product(), layer1_grad())),
            "other GEMMs": us(
                lambda: (
                    h2.forward_dot(h1.aug, out=h2.u),
                    ws.out_dot(h2.aug, out=ws.out),
                    ws.out_grad_dot(ws.deltaT, out=dWb[2]),
                    ws.out_back_dot(ws.delta, out=h2.g),
                    h2.grad_dot(h2.gT, out=dWb[1]),
                    h2.back_dot(h2.g, out=h1.g),
                    h1.bias_grad_dot(out=model.db[0]),
                )
            ),
            "update": us(update),
        }
    parts["rest"] = parts["step"] - parts["layer-1 GEMMs"] - parts["other GEMMs"] - parts["update"]
    return parts


def blas_kernel() -> str:
    """Which OpenBLAS numpy uses and the kernel it picked (threadpoolctl)."""
    for info in threadpool_info():
        if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", ""):
            return f"OpenBLAS {info.get('version')} {info.get('architecture')} kernels"
    return "numpy's BLAS: " + ", ".join(sorted({i.get("internal_api", "?") for i in threadpool_info()}))


# epochs per run: 10 at batch 100, the trial (hpsearch's search spaces train 5 to 50, 20 by
# default); 1 at batch 10 and 6 otherwise, to keep the script's wall time in minutes. Short runs
# weigh hpsearch's per-trial set-up more: ``--epochs 3`` shows it.
DEFAULT_EPOCHS = {10: 1, 100: 10}


class _Parser(argparse.ArgumentParser):
    """Errors in one line and exit status 2, like every other error of this script."""

    def error(self, message):
        message = re.sub(r"^argument [^:]+: (?=--)", "", message)  # the option is named once
        self.exit(2, f"bench_core: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        nargs="+",
        default=["mnist"],
        choices=DATA_SETS,
        help="data sets to run on, one table each (default: mnist)",
    )
    parser.add_argument(
        "--mnist", type=Path, default=MNIST, metavar="DIR", help=f"directory of the MNIST t10k files (default: {MNIST})"
    )
    parser.add_argument("--quick", action="store_true", help="a short run (fewer rows, 1 repeat)")
    parser.add_argument("--batches", type=whole("--batches", 1), nargs="+", default=[10, 100, 1000])
    parser.add_argument(
        "--epochs",
        type=whole("--epochs", 1),
        default=None,
        help="epochs per run (default: 1 at batch 10, 10 at 100, else 6)",
    )
    parser.add_argument(
        "--repeats", type=whole("--repeats", 1), default=None, help="rounds; the best counts (default 5)"
    )
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--textbook", action="store_true", help="include the textbook NumPy loop (slow)")
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of one dense step")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="time each run by the wall clock (default) or by this process's CPU "
        "time (steadier on a machine others are busy on: time spent waiting "
        "for a core does not count)",
    )
    parser.add_argument(
        "--normalizer",
        default=None,
        metavar="NAME/AXIS",
        help="normalize the pixels first with hpsearch's normalizer, e.g. "
        "z_score/per_feature (fitted on the training rows; default: none)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (BenchError, HPSearchError) as err:  # a bad --mnist, --normalizer, ...
        print(f"bench_core: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    global clock
    clock = CLOCKS[args.clock]
    n_train, n_val = (2000, 500) if args.quick else (8000, 2000)
    repeats = args.repeats or (1 if args.quick else 5)
    data_sets = {kind: load_data(kind, n_train, n_val, args.mnist) for kind in args.data}
    run_torch, torch_version = (None, None) if args.no_torch else torch_runner()

    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    import sklearn

    torch_text = torch_version or ("not measured (--no-torch)" if args.no_torch else "not installed")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"torch {torch_text}"
    )
    print(f"{blas_kernel()}; env: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    print(
        f"layers {'-'.join(map(str, LAYERS))} relu sgd lr={LR}; {n_train} train / {n_val} validation rows; "
        f"1 BLAS thread; best of {repeats}, contenders interleaved; {args.clock} clock"
    )
    plans = {}
    with threadpool_limits(limits=1):
        for kind, (xt, yt, xv, yv, source) in data_sets.items():
            if args.normalizer:
                from hpsearch.data import fit_normalizer

                name, _, axis = args.normalizer.partition("/")
                normalize = fit_normalizer(name, axis or "global", xt)
                xt, xv, source = normalize(xt), normalize(xv), f"{source}, {normalize!r}"
            data = (xt, yt, xv, yv)
            print(f"\ndata: {source}")
            print("training throughput, samples/s (higher is better); hpsearch's speed-up over each")
            names = (
                ["hpsearch", "hp-dense", "careful"]
                + ([] if args.no_sklearn else ["sklearn"])
                + (["textbook"] if args.textbook else [])
                + (["torch"] if run_torch is not None else [])
            )
            header = (
                f"{'batch':>5} {'epochs':>6} | "
                + " ".join(f"{n:>9}" for n in names)
                + " | "
                + " ".join(f"{'/' + n:>9}" for n in names[1:])
            )
            print(header)
            print("-" * len(header))
            accuracy_rows = []
            for batch in args.batches:
                epochs = args.epochs or max(1, DEFAULT_EPOCHS.get(batch, 6) // (3 if args.quick else 1))
                plans[kind, batch] = (data, epochs)
                runners = {
                    "hpsearch": lambda data=data, batch=batch, epochs=epochs: run_hpsearch(data, batch, epochs),
                    "hp-dense": lambda data=data, batch=batch, epochs=epochs: run_hpsearch(
                        data, batch, epochs, reorder=False
                    ),
                    "careful": lambda data=data, batch=batch, epochs=epochs: run_careful(data, batch, epochs),
                    "sklearn": lambda data=data, batch=batch, epochs=epochs: run_sklearn(data, batch, epochs),
                    "textbook": lambda data=data, batch=batch, epochs=epochs: run_textbook(data, batch, epochs),
                    "torch": lambda data=data, batch=batch, epochs=epochs: run_torch(data, batch, epochs),
                }
                contenders = {name: runners[name] for name in names}
                accuracy = {name: fn()[1] for name, fn in contenders.items()}  # warm-up, untimed
                best = {name: float("inf") for name in contenders}
                for _ in range(repeats):  # round-robin: a noisy neighbour hurts everyone alike
                    for name, fn in contenders.items():
                        seconds, accuracy[name] = fn()
                        best[name] = min(best[name], seconds)
                rate = {name: n_train * epochs / seconds for name, seconds in best.items()}
                print(
                    f"{batch:>5} {epochs:>6} | "
                    + " ".join(f"{rate[n]:>9,.0f}" for n in names)
                    + " | "
                    + " ".join(f"{rate['hpsearch'] / rate[n]:>8.2f}x" for n in names[1:]),
                    flush=True,
                )
                accuracy_rows.append(f"{batch:>5} {epochs:>6} | " + " ".join(f"{accuracy[n]:>9.3f}" for n in names))
            print("validation accuracy after the last run")
            print("\n".join(accuracy_rows))
    print("\nhp-dense = hpsearch with reorder='never'; careful = scripts/careful_mlp.py")
    print("\ninput reordering:")
    for (kind, batch), (data, epochs) in plans.items():
        print(f"  {kind:>6} batch {batch:>4} x {epochs} epochs: {input_plan(data, batch, epochs)}")
    if args.breakdown:
        print("\nwhere one dense hpsearch step goes (784 inputs, nothing skipped; warm, microseconds per step)")
        breakdown = {batch: step_breakdown(batch, repeats) for batch in args.batches}
        cols = list(next(iter(breakdown.values())))
        print(f"{'batch':>5} | " + " ".join(f"{c:>13}" for c in cols) + " | layer-1 GEMM share")
        for batch, parts in breakdown.items():
            share = parts["layer-1 GEMMs"] / parts["step"]
            print(f"{batch:>5} | " + " ".join(f"{parts[c]:>13.1f}" for c in cols) + f" | {share:>17.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
