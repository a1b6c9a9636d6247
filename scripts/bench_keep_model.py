"""What keeping a trial's model costs: keep_best's copies and one .npz write, next to the trial's training.

python scripts/bench_keep_model.py [mnist:DIR]      (default: mnist:../shared/data/mnist-t10k)
"""

import sys
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from hpsearch import data as datasets
from hpsearch.mlp import train
from hpsearch.model import load_model
from hpsearch.study import objective


def best(f, n=7):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t)
    return min(times), r


def measure(spec: str, hidden: tuple, batch: int, epochs: int) -> str:
    prep = objective.prepare(datasets.load(spec), 0.2, 0)
    cfg = {
        "hidden": hidden,
        "lr": 0.1,
        "batch_size": batch,
        "activation": "leaky_relu",
        "alpha": 0.1,
        "normalizer": "min_max",
    }
    mc, xtr, xv, _ = objective.build(cfg, prep, epochs=epochs, seed=1)
    args = (mc, xtr, prep.y_train, xv, prep.y_val)
    t_plain, _ = best(lambda: train(*args, n_classes=prep.n_classes))
    t_keep, h = best(lambda: train(*args, n_classes=prep.n_classes, keep_best=True))
    model = objective.as_model(h.model, cfg, prep, {"trial": 0})
    path = Path(tempfile.mkdtemp()) / "m.npz"
    t_save, _ = best(lambda: model.save(path))
    t_load, loaded = best(lambda: load_model(path))
    t_test, _ = best(lambda: loaded.evaluate(prep.x_test, prep.y_test))
    return (
        f"{spec.split(':')[0]} {hidden} batch {batch}, {epochs} epochs: train {t_plain * 1000:.1f} ms, "
        f"with keep_best {t_keep * 1000:.1f} ms; save {t_save * 1000:.2f} ms ({path.stat().st_size / 1024:.0f} "
        f"KiB), load {t_load * 1000:.2f} ms, test evaluate {t_test * 1000:.2f} ms"
    )


if __name__ == "__main__":
    mnist = sys.argv[1] if len(sys.argv) > 1 else "mnist:../shared/data/mnist-t10k"
    with threadpool_limits(1):  # as a trial runs
        print(measure("digits", (82, 61), 40, 20))
        print(measure(mnist, (100, 50), 100, 10))
