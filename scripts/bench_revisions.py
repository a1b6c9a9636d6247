"""hpsearch's trainer at two or more git revisions, run in alternation on the same data.

Each revision is checked out in a temporary ``git worktree``; every round runs one
process per revision, in turn, that times ``hpsearch.mlp.train`` (the revision's own)
``--repeats`` times on the benchmark's data and keeps the best. The data are made once
(by this checkout's ``scripts/bench_core.py``) and handed to every process, so only
the trainer differs. One BLAS thread; CPU time by default (see bench_core's ``--clock``).

    python scripts/bench_revisions.py HEAD~3 HEAD --data mnist --batch 100 --epochs 3 --rounds 3

Prints, per round, each revision's best time in ms and its last validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
root, data_file, batch, epochs, repeats, clock = sys.argv[1:7]
sys.path.insert(0, root)
import numpy as np
from threadpoolctl import threadpool_limits
from hpsearch.mlp import MLPConfig, train

timer = time.process_time if clock == "cpu" else time.perf_counter
with np.load(data_file) as d:
    xt, yt, xv, yv = d["xt"], d["yt"], d["xv"], d["yv"]
config = MLPConfig(hidden=(100, 50), activation="relu", optimizer="sgd", lr=0.1,
                   batch_size=int(batch), epochs=int(epochs), seed=0)
with threadpool_limits(1):
    history = train(config, xt, yt, xv, yv)  # warm-up, untimed
    best = float("inf")
    for _ in range(int(repeats)):
        t0 = timer()
        history = train(config, xt, yt, xv, yv)
        best = min(best, timer() - t0)
print(json.dumps({"ms": best * 1e3, "accuracy": history.epochs[-1]["val_accuracy"]}))
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        message = re.sub(r"^argument [^:]+: (?=--)", "", message)
        self.exit(2, f"bench_revisions: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    sys.path.insert(0, str(ROOT))
    from hpsearch._args import whole

    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("revisions", nargs="+", help="git revisions (two or more)")
    p.add_argument("--data", default="mnist", choices=("mnist", "blobs", "random"))
    p.add_argument("--mnist", type=Path, default=None, metavar="DIR", help="as in bench_core")
    p.add_argument("--batch", type=whole("--batch", 1), default=100)
    p.add_argument("--epochs", type=whole("--epochs", 1), default=3)
    p.add_argument("--repeats", type=whole("--repeats", 1), default=5, help="timed runs per process; the best counts")
    p.add_argument("--rounds", type=whole("--rounds", 1), default=3, help="processes per revision, alternating")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.revisions) < 2:
        print("bench_revisions: give two or more revisions to compare", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "scripts"))
    import numpy as np
    from bench_core import MNIST, BenchError, load_data

    commits = {}
    for rev in args.revisions:
        found = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            text=True,
        )
        if found.returncode:
            print(f"bench_revisions: {rev!r} is not a revision of {ROOT}", file=sys.stderr)
            return 2
        commits[rev] = found.stdout.strip()
    try:
        xt, yt, xv, yv, source = load_data(args.data, 8000, 2000, args.mnist or MNIST)
    except BenchError as err:
        print(f"bench_revisions: {err}", file=sys.stderr)
        return 2
    print(f"data: {source}; batch {args.batch}, {args.epochs} epochs; best of {args.repeats}, {args.clock} clock")
    with tempfile.TemporaryDirectory(prefix="bench-revisions-") as tmp:
        data_file = Path(tmp) / "data.npz"
        np.savez(data_file, xt=xt, yt=yt, xv=xv, yv=yv)
        trees = {}
        try:
            for rev, commit in commits.items():
                tree = Path(tmp) / f"tree{len(trees)}"
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), commit], check=True
                )
                trees[rev] = tree
            width = max(len(r) for r in trees)
            for round_ in range(1, args.rounds + 1):
                cells = []
                for rev, tree in trees.items():
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD, str(tree), str(data_file), str(args.batch), str(args.epochs)]
                        + [str(args.repeats), args.clock],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    cells.append(f"{rev:>{width}} {r['ms']:8.2f} ms (accuracy {r['accuracy']:.4f})")
                print(f"round {round_}: " + "   ".join(cells), flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
