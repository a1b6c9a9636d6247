"""``hpsearch edge SPACE.toml``: the learning rate at which a space's runs start to diverge, before any study.

For each of ``--samples`` configurations drawn from the space (every parameter but
``lr``, as a study would draw them), :func:`hpsearch.mlp.lr_edge` measures the loss's
sharpness ``λ_max`` at initialization, which puts the optimizer's quadratic stability
limit at ``lr = limit / λ_max``, and bisects ``lr`` with short runs of the real trainer
around it to find where runs stop recovering. Those per-configuration edges give the
share of a study's trials that diverge at each ``lr``; the space's edge is where a
one-split tree on ``lr`` -- what ``regions`` fits on a study -- would cut that share over
the searched range (the median configuration's edge when the range does not reach it),
with the spread over configurations, and the same per value of every categorical
parameter. Adaptive optimizers (adagrad, rmsprop, adam) get no number: the
step they take is rescaled per parameter, so ``lr · λ_max`` does not bound it.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hpsearch import data as datasets
from hpsearch._args import whole
from hpsearch.mlp import MLPConfig, lr_edge
from hpsearch.mlp._edge import PROBE, STEPS
from hpsearch.space import load_space
from hpsearch.study import objective
from hpsearch.vocabulary import SEED_MAX

SAMPLES = 12
SPREAD = (10, 90)  # percentiles of the per-configuration edges shown as the spread
MOVES = 1.25  # a categorical parameter "moves the edge" when its categories' medians differ by this factor


def add_arguments(p) -> None:
    p.add_argument("space", type=Path, metavar="SPACE", help="search-space TOML file")
    p.add_argument(
        "--dataset", default=None, help="data set: digits, mnist:DIR, npz:FILE, csv:FILE (default: [study] dataset)"
    )
    p.add_argument(
        "--samples",
        "-n",
        type=whole("--samples", 1),
        default=SAMPLES,
        metavar="N",
        help=f"configurations sampled from the space (default: {SAMPLES})",
    )
    p.add_argument(
        "--seed",
        type=whole("--seed", 0, SEED_MAX),
        default=None,
        help="seed of the samples and measurements (default: [study] seed)",
    )
    p.add_argument(
        "--steps", type=whole("--steps", 1), default=STEPS, help=f"optimizer steps of each short run (default: {STEPS})"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=whole("--jobs", 1),
        default=None,
        help="configurations measured at once, each in its own process (default: all cores)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format (default: text)")


def main(args) -> int:
    started = time.perf_counter()
    space = load_space(args.space)
    settings = space.study
    seed = settings.seed if args.seed is None else args.seed
    spec = args.dataset or settings.dataset
    # a path written in the file is relative to the file; one given on the command line, to the cwd
    root = None if args.dataset else Path(space.source).parent
    dataset = datasets.load(spec, root=root)
    prepared = objective.prepare(dataset, settings.validation, settings.seed)
    jobs = args.jobs or os.cpu_count() or 1
    report = predict(space, prepared, samples=args.samples, seed=seed, steps=args.steps, jobs=jobs)
    report["seconds"] = time.perf_counter() - started
    report["space"] = str(args.space)
    report["dataset"] = dataset.describe()
    if args.format == "json":
        print(json.dumps(report, indent=2, default=_json))
    else:
        print("\n".join(text_lines(report)))
    return 0


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def predict(space, prepared: objective.Prepared, *, samples: int, seed: int, steps: int = STEPS, jobs: int = 1) -> dict:
    """The measurements and the prediction as plain values (what ``--format json`` prints).
    ``jobs`` > 1 measures that many configurations at once, in forked processes."""
    global _WORK
    configs = space.sample(samples, seed)
    for config in configs:  # normalized once, before the workers fork, as the study's supervisor does
        data_opts, _ = objective.split_config(config)
        prepared.normalized(data_opts["normalizer"], data_opts["norm_axis"])
    _WORK = (space, prepared, configs, seed, steps)
    try:
        if jobs > 1 and samples > 1 and "fork" in mp.get_all_start_methods():
            with ProcessPoolExecutor(max_workers=min(jobs, samples), mp_context=mp.get_context("fork")) as pool:
                rows = list(pool.map(_measure, range(samples)))
        else:
            rows = [_measure(i) for i in range(samples)]
    finally:
        _WORK = None
    return summarize(space, rows, steps)


_WORK = None  # what the forked workers read (shared copy-on-write, never pickled)


def _measure(i: int) -> dict:
    from threadpoolctl import threadpool_limits

    space, prepared, configs, seed, steps = _WORK
    config = configs[i]
    data_opts, mlp_opts = objective.split_config(config)
    mlp_opts = {k: v for k, v in mlp_opts.items() if k != "lr"}
    mlp_config = MLPConfig.from_dict({**mlp_opts, "epochs": 1, "seed": objective.trial_seed(seed, i)})
    x_train = prepared.normalized(data_opts["normalizer"], data_opts["norm_axis"])[0]
    with threadpool_limits(1):  # one BLAS thread per measurement: the processes are the parallelism
        est = lr_edge(
            mlp_config,
            x_train,
            prepared.y_train,
            n_classes=prepared.n_classes,
            rng=np.random.default_rng([seed, i]),
            steps=steps,
        )
    flat = space.flatten({k: v for k, v in config.items() if k != "lr"})
    return {
        "config": flat,
        "optimizer": mlp_config.optimizer,
        "sharpness": est.sharpness,
        "limit": est.limit,
        "lr_limit": est.lr_limit,
        "lr_edge": est.lr_edge,
        "survived": est.low,
        "diverged": est.high,
        "factor": est.factor,
        "runs": est.runs,
    }


SMOOTH = 0.1  # each configuration's edge is known to about ±10 % (the bisection's last bracket)


def tree_edge(edges, dist, weights=None) -> float | None:
    """The ``lr`` threshold of a depth-1 tree (Gini, as ``regions`` fits) on a study of a space whose
    configurations diverge above ``edges`` (0: at any lr, inf: never; each counted with its
    ``weights``), with ``lr`` drawn from ``dist``; ``None`` if the searched range holds no
    threshold (nothing or everything there diverges)."""
    from scipy.stats import norm

    lo, hi = float(dist.low), float(dist.high)
    log = bool(getattr(dist, "log", False))
    grid = np.geomspace(lo, hi, 801) if log else np.linspace(lo, hi, 801)  # equally likely lr values
    e = np.asarray(edges, dtype=float)
    w = np.ones(len(e)) if weights is None else np.asarray(weights, dtype=float)
    finite = np.isfinite(e) & (e > 0)
    share = np.zeros_like(grid)
    if finite.any():
        cdf = norm.cdf((np.log(grid)[:, None] - np.log(e[finite])[None, :]) / SMOOTH)
        share += cdf @ w[finite]
    share = (share + w[e <= 0].sum()) / w.sum()  # P(diverged | lr)
    if share.max() - share.min() < 0.05:
        return None
    n = len(grid)
    k = np.arange(1, n)
    cum = np.cumsum(share)
    q_left, q_right = cum[:-1] / k, (cum[-1] - cum[:-1]) / (n - k)
    impurity = k * q_left * (1 - q_left) + (n - k) * q_right * (1 - q_right)
    best = int(np.argmin(impurity))
    return float(np.sqrt(grid[best] * grid[best + 1]) if log else (grid[best] + grid[best + 1]) / 2)


def _quantile(values, weights, q: float) -> float:
    """Weighted quantile (in log) of positive ``values``."""
    v, w = np.log(np.asarray(values, dtype=float)), np.asarray(weights, dtype=float)
    order = np.argsort(v)
    v, w = v[order], w[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(math.exp(np.interp(q, cum, v)))


def _median(values, weights=None) -> float:
    return _quantile(values, np.ones(len(values)) if weights is None else weights, 0.5)


def _spread(values, weights=None) -> tuple[float, float]:
    w = np.ones(len(values)) if weights is None else weights
    return _quantile(values, w, SPREAD[0] / 100), _quantile(values, w, SPREAD[1] / 100)


def _weights(space, rows: list[dict]) -> np.ndarray:
    """Post-stratification on the categorical parameters: each configuration counts as its
    categories' share in the space (uniform choices) over their share among the samples,
    so 12 z_score and 4 min_max samples weigh like the 50/50 a study draws."""
    w = np.ones(len(rows))
    for name in space.param_names():
        if name == "lr" or space.scale(name) != "categorical":
            continue
        options = [str(o) for o in space.distributions()[name].choices]
        values = [str(r["config"].get(name)) for r in rows]
        present = [v for v in values if v in options]
        for i, v in enumerate(values):
            if v in options:
                w[i] *= (len(present) / len(options)) / present.count(v)
    return w


def summarize(space, rows: list[dict], steps: int) -> dict:
    # a configuration with a limit but no positive λ_max (all-zero weights, say) has no edge to find
    measured = [r for r in rows if r["limit"] is not None and r["lr_limit"] is not None]
    adaptive = sorted({r["optimizer"] for r in rows if r["limit"] is None})
    out: dict = {
        "method": (
            f"λ_max at initialization (Lanczos on Hessian-vector products, {PROBE} rows), then runs of "
            f"{steps} steps bisected on lr from limit/λ_max"
        ),
        "samples": len(rows),
        "steps": steps,
        "configurations": rows,
        "adaptive": adaptive,
        "lr_edge": None,
        "lr_edge_median": None,
        "lr_edge_spread": None,
        "within_range": False,
        "lr_limit": None,
        "lr_limit_spread": None,
        "factor": None,
        "factor_spread": None,
        "by": {},
        "searched": None,
        "expect_diverged": None,
    }
    if adaptive:
        out["adaptive_note"] = (
            f"no prediction for {', '.join(adaptive)}: adaptive optimizers rescale every step by "
            f"the gradients' history, so lr·λ_max < 2 does not bound them"
        )
    if not measured:
        return out
    weights = _weights(space, rows)[[r["limit"] is not None and r["lr_limit"] is not None for r in rows]]
    # an edge outside the bracket: 0 if every run diverged, inf if none did (the tree and the
    # expected share), or the bracket's end (the median and the spread)
    exact = np.array(
        [r["lr_edge"] if r["lr_edge"] is not None else (0.0 if r["survived"] == 0 else math.inf) for r in measured]
    )
    clipped = np.array(
        [
            r["lr_edge"] if r["lr_edge"] is not None else (r["diverged"] if r["survived"] == 0 else r["survived"])
            for r in measured
        ]
    )
    dist = space.distributions().get("lr")
    dist = dist if dist is not None and hasattr(dist, "low") else None
    out["lr_edge_median"] = _median(clipped, weights)
    cut = tree_edge(exact, dist, weights) if dist is not None else None
    out["within_range"] = cut is not None
    out["lr_edge"] = cut if cut is not None else out["lr_edge_median"]
    out["lr_edge_spread"] = _spread(clipped, weights)
    out["censored"] = int(np.count_nonzero(~np.isfinite(exact) | (exact <= 0)))
    out["never"] = int(np.count_nonzero(~np.isfinite(exact)))
    if out["never"] == len(measured):  # no short run overflowed: no edge, only a bound
        out["lr_edge"] = out["lr_edge_median"] = None
        out["no_edge_below"] = float(clipped.min())
    limits = np.array([r["lr_limit"] for r in measured])
    out["lr_limit"], out["lr_limit_spread"] = _median(limits, weights), _spread(limits, weights)
    factors = [(r["factor"], w) for r, w in zip(measured, weights) if r["factor"]]
    if factors:
        f, w = zip(*factors)
        out["factor"], out["factor_spread"] = _median(f, w), _spread(f, w)
    out["limits"] = sorted({r["limit"] for r in measured})
    for name in space.param_names():
        if space.scale(name) != "categorical" or name == "lr":
            continue
        groups: dict = {}
        for i, r in enumerate(measured):
            if name in r["config"]:
                groups.setdefault(str(r["config"][name]), []).append(i)
        by = {}
        for k, idx in groups.items():
            cut = tree_edge(exact[idx], dist) if dist is not None else None
            median = _median(clipped[idx])
            by[k] = {
                "lr_edge": cut if cut is not None else median,
                "lr_edge_median": median,
                "lr_edge_spread": _spread(clipped[idx]),
                "n": len(idx),
            }
        if len(by) >= 2:
            out["by"][name] = by
    if dist is not None:
        out["searched"] = (float(dist.low), float(dist.high))
        above = np.array([_above(dist, e) for e in exact])
        out["expect_diverged"] = float(above @ weights / weights.sum()) * len(measured) / len(rows)
    return out


def _above(dist, edge: float) -> float:
    """P(lr > edge) under the space's lr distribution."""
    lo, hi = float(dist.low), float(dist.high)
    if edge <= lo:
        return 1.0
    if edge >= hi:  # and inf: never diverges
        return 0.0
    if getattr(dist, "log", False):
        return math.log(hi / edge) / math.log(hi / lo)
    return (hi - edge) / (hi - lo)


def _n(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def text_lines(r: dict) -> list[str]:
    lines = [
        f"edge of {r['space']} · {r['dataset']} · {r['samples']} sampled configurations · {r['seconds']:.1f} s",
        f"method: {r['method']}",
    ]
    if r["lr_edge"] is None:
        if r.get("no_edge_below") is not None:
            lines.append(
                f"predicted lr edge: none below lr {_n(r['no_edge_below'])} — no short run of the "
                f"{r['never']} configurations overflowed up to 128× its quadratic limit (a ReLU "
                f"network's units can die instead)"
            )
            if r.get("adaptive_note"):
                lines.append(f"  {r['adaptive_note']}")
            if r["searched"] is not None:
                lines.append(
                    f"the searched lr {_n(r['searched'][0])} – {_n(r['searched'][1])}: expect no trial "
                    f"to overflow" + (" (with sgd or momentum)" if r.get("adaptive_note") else "")
                )
        else:
            lines.append(
                "predicted lr edge: none"
                + (
                    f" — {r['adaptive_note']}"
                    if r.get("adaptive_note")
                    else " — no short run diverged or survived inside the bracket"
                )
            )
        return lines
    lo, hi = r["lr_edge_spread"]
    where = (
        "where a one-split tree would cut a study of this space; the median configuration's edge is "
        f"{_n(r['lr_edge_median'])}"
        if r["within_range"]
        else "the median configuration's edge"
    )
    lines.append(
        f"predicted lr edge: {_n(r['lr_edge'])}  ({where}; {_n(lo)} – {_n(hi)} over the middle 80 % "
        f"of the configurations)"
    )
    limits = r["limits"]
    limit = (
        " / ".join(_n(v) for v in limits)
        if len(limits) <= 2
        else f"2 + 2·momentum: {_n(min(limits))} – {_n(max(limits))}"
    )
    llo, lhi = r["lr_limit_spread"]
    why = (
        f"why: lr·λ_max reaches the optimizer's stability limit ({limit}) at lr {_n(r['lr_limit'])} "
        f"({_n(llo)} – {_n(lhi)})"
    )
    if r["factor"] is not None:
        flo, fhi = r["factor_spread"]
        why += (
            f"; above it the first steps flatten the loss (catapult) and runs survive up to "
            f"{r['factor']:.1f}× that ({flo:.1f} – {fhi:.1f}×), then overflow"
        )
    lines.append(why)
    for name, groups in r["by"].items():
        parts = [
            f"{name} = {k} {_n(v['lr_edge'])} ({_n(v['lr_edge_spread'][0])} – {_n(v['lr_edge_spread'][1])}, "
            f"{v['n']} configurations)"
            for k, v in groups.items()
        ]
        lo_k, lo_v = min(groups.items(), key=lambda kv: kv[1]["lr_edge"])
        hi_v = max(groups.values(), key=lambda v: v["lr_edge"])
        ratio = hi_v["lr_edge"] / lo_v["lr_edge"]
        verdict = (
            f"→ {lo_k} lowers the edge {ratio:.1f}×" if ratio >= MOVES else f"→ about the same edge whatever the {name}"
        )
        lines.append("  " + "    ".join(parts) + "   " + verdict)
    if r.get("never"):
        lines.append(
            f"  {r['never']} of the {len(r['configurations'])} configurations did not overflow up to 128× "
            f"their quadratic limit: counted as never diverging"
        )
    if r.get("adaptive_note"):
        lines.append(f"  {r['adaptive_note']}")
    if r["searched"] is not None:
        a, b = r["searched"]
        edge = r["lr_edge"]
        share = round(100 * r["expect_diverged"])
        if b <= edge:
            where = f"stays {edge / b:.1f}× below the predicted edge"
        else:
            where = f"reaches {b / edge:.1f}× past the predicted edge"
        lines.append(f"the searched lr {_n(a)} – {_n(b)} {where}: expect about {share} % of the trials to diverge")
    return lines
