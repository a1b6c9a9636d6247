"""``hpsearch edge SPACE.toml``: the learning rate at which a space's runs start to diverge, before any study.

For each of ``--samples`` configurations drawn from the space (every parameter but
``lr``, as a study would draw them), :func:`hpsearch.mlp.lr_edge` measures the loss's
sharpness ``λ_max`` at initialization, which puts the optimizer's quadratic stability
limit at ``lr = limit / λ_max``, and bisects ``lr`` with short runs of the real trainer
around it to find where runs stop recovering. The space's edge is the median over the
configurations (what a decision tree on a study's ``lr`` finds is where half of them
diverge), with the spread over configurations and the median per value of every
categorical parameter. Adaptive optimizers (adagrad, rmsprop, adam) get no number: the
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
from hpsearch import objective
from hpsearch._args import whole
from hpsearch.errors import HPSearchError
from hpsearch.mlp import MLPConfig, lr_edge
from hpsearch.mlp._edge import PROBE, STEPS
from hpsearch.space import load_space

SAMPLES = 16
SPREAD = (10, 90)  # percentiles of the per-configuration edges shown as the spread
MOVES = 1.25  # a categorical parameter "moves the edge" when its categories' medians differ by this factor


def add_arguments(p) -> None:
    p.add_argument("space", type=Path, metavar="SPACE", help="search-space TOML file")
    p.add_argument("--dataset", default=None,
                   help="data set: digits, mnist:DIR, npz:FILE, csv:FILE (default: [study] dataset)")
    p.add_argument("--samples", "-n", type=whole("--samples", 1), default=SAMPLES, metavar="N",
                   help=f"configurations sampled from the space (default: {SAMPLES})")
    p.add_argument("--seed", type=int, default=None, help="seed of the samples and measurements (default: [study] seed)")
    p.add_argument("--steps", type=whole("--steps", 1), default=STEPS,
                   help=f"optimizer steps of each short run (default: {STEPS})")
    p.add_argument("--jobs", "-j", type=whole("--jobs", 1), default=None,
                   help="configurations measured at once, each in its own process (default: all cores)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format (default: text)")


def main(args) -> int:
    started = time.perf_counter()
    space = load_space(args.space)
    settings = space.study
    seed = settings.seed if args.seed is None else args.seed
    if seed < 0:
        raise HPSearchError(f"--seed must be 0 or more, got {seed}")
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


def predict(space, prepared: objective.Prepared, *, samples: int, seed: int, steps: int = STEPS,
            jobs: int = 1) -> dict:
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
        est = lr_edge(mlp_config, x_train, prepared.y_train, n_classes=prepared.n_classes,
                      rng=np.random.default_rng([seed, i]), steps=steps)
    flat = space.flatten({k: v for k, v in config.items() if k != "lr"})
    return {"config": flat, "optimizer": mlp_config.optimizer, "sharpness": est.sharpness,
            "limit": est.limit, "lr_limit": est.lr_limit, "lr_edge": est.lr_edge,
            "survived": est.low, "diverged": est.high, "factor": est.factor, "runs": est.runs}


def _spread(values) -> tuple[float, float]:
    lo, hi = np.percentile(np.log(values), SPREAD)
    return float(math.exp(lo)), float(math.exp(hi))


def _median(values) -> float:
    return float(math.exp(np.median(np.log(values))))


def summarize(space, rows: list[dict], steps: int) -> dict:
    measured = [r for r in rows if r["limit"] is not None]
    adaptive = sorted({r["optimizer"] for r in rows if r["limit"] is None})
    # an edge outside the bracket counts at the bracket's end: below all, or above all
    edges = [r["lr_edge"] if r["lr_edge"] is not None else (r["diverged"] if r["survived"] == 0 else r["survived"])
             for r in measured]
    edges = [e for e in edges if e is not None and 0 < e < math.inf]
    out: dict = {
        "method": (f"λ_max at initialization (Lanczos on Gauss–Newton products, {PROBE} rows), then runs of "
                   f"{steps} steps bisected on lr from limit/λ_max"),
        "samples": len(rows), "steps": steps, "configurations": rows, "adaptive": adaptive,
        "lr_edge": None, "lr_edge_spread": None, "lr_limit": None, "lr_limit_spread": None,
        "factor": None, "factor_spread": None, "by": {}, "searched": None, "expect_diverged": None,
    }
    if adaptive:
        out["adaptive_note"] = (f"no prediction for {', '.join(adaptive)}: adaptive optimizers rescale every step by "
                                f"the gradients' history, so lr·λ_max < 2 does not bound them")
    if not edges:
        return out
    out["lr_edge"] = _median(edges)
    out["lr_edge_spread"] = _spread(edges)
    limits = [r["lr_limit"] for r in measured if r["lr_limit"]]
    out["lr_limit"], out["lr_limit_spread"] = _median(limits), _spread(limits)
    factors = [r["factor"] for r in measured if r["factor"]]
    if factors:
        out["factor"], out["factor_spread"] = _median(factors), _spread(factors)
    out["limits"] = sorted({r["limit"] for r in measured})
    for name in space.param_names():
        if space.scale(name) != "categorical" or name == "lr":
            continue
        groups: dict = {}
        for r, e in zip(measured, edges):
            if name in r["config"]:
                groups.setdefault(str(r["config"][name]), []).append(e)
        medians = {k: {"lr_edge": _median(v), "n": len(v)} for k, v in groups.items()}
        if len(medians) >= 2:
            out["by"][name] = medians
    dist = space.distributions().get("lr")
    if dist is not None and hasattr(dist, "low"):
        out["searched"] = (float(dist.low), float(dist.high))
        out["expect_diverged"] = float(np.mean([_above(dist, e) for e in edges])) * len(edges) / max(
            len(edges) + sum(1 for r in rows if r["limit"] is None), 1)
    return out


def _above(dist, edge: float) -> float:
    """P(lr > edge) under the space's lr distribution."""
    lo, hi = float(dist.low), float(dist.high)
    if edge <= lo:
        return 1.0
    if edge >= hi:
        return 0.0
    if getattr(dist, "log", False):
        return math.log(hi / edge) / math.log(hi / lo)
    return (hi - edge) / (hi - lo)


def _n(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def text_lines(r: dict) -> list[str]:
    lines = [f"edge of {r['space']} · {r['dataset']} · {r['samples']} sampled configurations · {r['seconds']:.1f} s",
             f"method: {r['method']}"]
    if r["lr_edge"] is None:
        lines.append("predicted lr edge: none" + (f" — {r['adaptive_note']}" if r.get("adaptive_note") else
                                                   " — no short run diverged or survived inside the bracket"))
        return lines
    lo, hi = r["lr_edge_spread"]
    lines.append(f"predicted lr edge: {_n(r['lr_edge'])}  ({_n(lo)} – {_n(hi)} over the middle 80 % of the "
                 f"sampled configurations)")
    limit = " / ".join(_n(v) for v in r["limits"])
    llo, lhi = r["lr_limit_spread"]
    why = (f"why: lr·λ_max reaches the optimizer's stability limit ({limit}) at lr {_n(r['lr_limit'])} "
           f"({_n(llo)} – {_n(lhi)})")
    if r["factor"] is not None:
        flo, fhi = r["factor_spread"]
        why += (f"; above it the first steps flatten the loss (catapult) and runs survive up to "
                f"{r['factor']:.1f}× that ({flo:.1f} – {fhi:.1f}×), then overflow")
    lines.append(why)
    for name, groups in r["by"].items():
        parts = [f"{name} = {k} {_n(v['lr_edge'])} ({v['n']})" for k, v in groups.items()]
        (lo_k, lo_v), (hi_k, hi_v) = (min(groups.items(), key=lambda kv: kv[1]["lr_edge"]),
                                      max(groups.items(), key=lambda kv: kv[1]["lr_edge"]))
        ratio = hi_v["lr_edge"] / lo_v["lr_edge"]
        verdict = (f"→ {lo_k} lowers the edge {ratio:.1f}×" if ratio >= MOVES
                   else f"→ about the same edge whatever the {name}")
        lines.append("  " + "    ".join(parts) + "   " + verdict)
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
