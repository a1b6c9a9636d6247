"""What the dead-layer check costs a run that does not die, and what stopping a dead one saves.

    python scripts/outcomes/detection_cost.py --dataset mnist:/work/shared/data/mnist-t10k --repeats 7

For a few configurations that learn, the time the check itself takes (its screen of the
validation pass and any confirmation on the training set, timed inside the run) as a share
of the run, the median of ``--repeats`` runs: a share, unlike two wall times, holds still on
a machine other people load. Also the best of the runs with the check on and off. For
configurations that die, the seconds to the stop against the full run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from hpsearch import data as datasets
from hpsearch.errors import Dead
from hpsearch.mlp import _outcome, _train, train

SPENT = [0.0]


def _timed(fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            SPENT[0] += time.perf_counter() - t

    return wrapper


_outcome.DeadWatch.see = _timed(_outcome.DeadWatch.see)
_train._DeadCheck.after_epoch = _timed(_train._DeadCheck.after_epoch)

LEARN = [
    dict(hidden=[100, 50], lr=0.1, batch_size=50, optimizer="sgd"),
    dict(hidden=[60, 60], lr=0.05, batch_size=20, optimizer="momentum"),
    dict(hidden=[90, 30], lr=0.003, batch_size=90, optimizer="adam"),
]
DIE = [
    dict(hidden=[100, 50], lr=5.0, batch_size=50, optimizer="sgd"),
    dict(hidden=[60, 60], lr=3.0, batch_size=20, optimizer="momentum"),
    dict(hidden=[90, 30], lr=3.0, batch_size=90, optimizer="adam"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    ds = datasets.load(args.dataset)
    xtr, ytr, xv, yv = datasets.split(ds.x_train, ds.y_train, 0.2, 0)
    norm = datasets.fit_normalizer("min_max", "global", xtr)
    xtr, xv = norm(xtr), norm(xv)
    print(f"{args.dataset}: {len(xtr)} train / {len(xv)} validation rows, {args.epochs} epochs, best of {args.repeats}")
    print("runs that learn            check off   check on    the check's share of the run (median)")
    for cfg in LEARN:
        cfg = {**cfg, "activation": "relu", "epochs": args.epochs, "seed": 1}
        best = {True: float("inf"), False: float("inf")}
        shares = []
        for _ in range(args.repeats):
            for on in (False, True):
                SPENT[0] = 0.0
                t = time.perf_counter()
                h = train(cfg, xtr, ytr, xv, yv, n_classes=ds.n_classes, stop_dead=on)
                took = time.perf_counter() - t
                best[on] = min(best[on], took)
                if on:
                    shares.append(SPENT[0] / took)
        name = f"{cfg['optimizer']} lr {cfg['lr']} b{cfg['batch_size']}"
        print(
            f"  {name:<24} {best[False]:8.3f} s  {best[True]:8.3f} s  {100 * statistics.median(shares):5.2f} %"
            f"   (val_acc {h.epochs[-1]['val_accuracy']:.3f}, {h.outcome})"
        )
    print("runs that die              to the end  stopped     saved")
    for cfg in DIE:
        cfg = {**cfg, "activation": "relu", "epochs": args.epochs, "seed": 1}
        t = time.perf_counter()
        full = train(cfg, xtr, ytr, xv, yv, n_classes=ds.n_classes, stop_dead=False)
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        try:
            train(cfg, xtr, ytr, xv, yv, n_classes=ds.n_classes)
            what = "not stopped"
        except Dead as dead:
            what = f"dead: hidden layer {dead.layer}, epoch {dead.epoch}"
        t_stop = time.perf_counter() - t
        name = f"{cfg['optimizer']} lr {cfg['lr']} b{cfg['batch_size']}"
        print(
            f"  {name:<24} {t_full:8.3f} s  {t_stop:8.3f} s  {100 * (1 - t_stop / t_full):4.0f} %   ({what}; "
            f"run to the end: {full.outcome}, val_acc {full.epochs[-1]['val_accuracy']:.3f})"
        )


if __name__ == "__main__":
    main()
