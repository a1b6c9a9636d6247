"""Trials per hour with 1 worker and with N workers, measured side by side in one run.

    python scripts/bench_jobs.py --dataset mnist:../shared/data/mnist-t10k --trials 16 --epochs 10
    python scripts/bench_jobs.py                       # digits: trials of ~0.1 s, where per-trial overhead shows

Throughput is counted from the trials' own start and end times in the study
(first start to last end, to the millisecond), so process start-up and data
loading are not part of it; the wall time of each whole command is printed too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

SPACE = """
[study]
name = "bench-jobs"
dataset = "digits"
epochs = {epochs}
seed = 0
test_top = 0

[params]
hidden      = [ {{ int = [64, 128] }}, {{ int = [32, 64] }} ]
lr          = {{ log_uniform = [0.01, 0.1] }}
batch_size  = {{ int = [10, 50], step = 10 }}
activation  = "leaky_relu"
alpha       = {{ uniform = [0.0, 0.3] }}
normalizer  = "min_max"
"""


def measure(space: Path, out: Path, jobs: int, trials: int, dataset: str | None) -> dict:
    argv = [
        sys.executable,
        "-m",
        "hpsearch",
        "run",
        str(space),
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        "--trials",
        str(trials),
        "-q",
    ]
    if dataset:
        argv += ["--dataset", dataset]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    df = pd.read_csv(out / "bench-jobs" / "trials.csv", parse_dates=["datetime_start"])
    start = df["datetime_start"].min()
    end = (df["datetime_start"] + pd.to_timedelta(df["seconds"], unit="s")).max()
    span = (end - start).total_seconds()
    return {
        "jobs": jobs,
        "trials": len(df),
        "span_s": span,
        "wall_s": wall,
        "trials_per_hour": len(df) / span * 3600,
        "mean_trial_s": df["seconds"].mean(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="workers to compare against 1 (default 2)")
    ap.add_argument("--dataset", default=None, help="override the data set (default: digits)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space = tmp / "bench.toml"
        space.write_text(textwrap.dedent(SPACE.format(epochs=args.epochs)))
        rows = [measure(space, tmp / f"j{j}", j, args.trials, args.dataset) for j in (1, args.jobs)]
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    ratio = rows[1]["trials_per_hour"] / rows[0]["trials_per_hour"]
    print(
        f"\n{args.jobs} workers / 1 worker: {ratio:.2f}x trials per hour "
        f"(wall {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}x)  target >= 1.8x on 2 cores"
    )


if __name__ == "__main__":
    main()
