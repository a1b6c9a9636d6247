"""Calibrate ``hpsearch edge`` against what studies measure: the predicted lr edge of each
space next to the lr edge ``regions`` fits on a study of it, and what each took.

    python scripts/calibrate_edge.py scripts/calibration/*.toml \
        --dataset mnist:../shared/data/mnist-t10k --trials 100 --epochs 10 --jobs 1

For every space: ``python -m hpsearch edge SPACE --format json`` (timed, a process of its
own), ``python -m hpsearch run SPACE`` (timed, results under ``--out``), then
``hpsearch.analysis.regions.divergence_edge`` on the study's ``lr`` (overall and per value of each
categorical parameter, as ``regions`` prints them). Prints a Markdown table; ``--json FILE``
also keeps every number.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run(cmd: list[str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout, seconds


def regions_edges(results_dir: Path) -> dict:
    from hpsearch.analysis.regions import _finished, divergence_edge
    from hpsearch.results import diverged_mask, open_results

    res = open_results(results_dir)
    df = res.trials
    fin = _finished(df)
    out = {"finished": len(fin), "diverged": int(diverged_mask(fin).sum()), "by": {}}
    e = divergence_edge(res, df, "lr")
    out["lr_edge"] = e.threshold if e is not None and e.side == ">" else None
    out["words"] = e.words() if e is not None else None
    for p in res.params:
        if p == "lr" or res.is_numeric(p):
            continue
        for cat in res.choices(p):
            sub = df[df[p].astype(str) == str(cat)]
            ce = divergence_edge(res, sub, "lr", min_leaf=2)
            out["by"].setdefault(p, {})[str(cat)] = ce.threshold if ce is not None and ce.side == ">" else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spaces", nargs="+", type=Path)
    ap.add_argument("--dataset", default="mnist:../shared/data/mnist-t10k")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="study seed; edge gets seed + 1000 (fresh samples)")
    ap.add_argument("--samples", type=int, default=None, help="edge --samples (default: edge's own)")
    ap.add_argument("--out", type=Path, default=Path("results/calibration"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="keep a study already run by this script (and its time)")
    ap.add_argument("--edge-jobs", type=int, default=None, help="edge --jobs (default: edge's own, all cores)")
    args = ap.parse_args()

    py = [sys.executable, "-m", "hpsearch"]
    rows = []
    for space in args.spaces:
        cmd = [*py, "edge", str(space), "--dataset", args.dataset, "--format", "json", "--seed", str(args.seed + 1000)]
        if args.samples:
            cmd += ["--samples", str(args.samples)]
        if args.edge_jobs:
            cmd += ["--jobs", str(args.edge_jobs)]
        text, edge_s = run(cmd)
        pred = json.loads(text)
        name = f"{space.stem}-s{args.seed}-{args.trials}x{args.epochs}"
        timing = args.out / name / "calibration-seconds.json"
        if args.reuse and timing.exists():  # the study ran before: keep it and its wall time
            study_s = json.loads(timing.read_text())["study_seconds"]
        else:
            _, study_s = run(
                [
                    *py,
                    "run",
                    str(space),
                    "--dataset",
                    args.dataset,
                    "--trials",
                    str(args.trials),
                    "--epochs",
                    str(args.epochs),
                    "--jobs",
                    str(args.jobs),
                    "--seed",
                    str(args.seed),
                    "--name",
                    name,
                    "--out",
                    str(args.out),
                    "--test-top",
                    "0",
                    "-q",
                ]
            )
            timing.write_text(json.dumps({"study_seconds": study_s}))
        meas = regions_edges(args.out / name)
        row = {
            "space": str(space),
            "trials": args.trials,
            "epochs": args.epochs,
            "edge_seconds": edge_s,
            "study_seconds": study_s,
            "predicted": pred,
            "measured": meas,
        }
        rows.append(row)
        print(table_row(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


def _n(x) -> str:
    return "—" if x is None else f"{x:.2g}"


def table_row(row: dict) -> str:
    p, m = row["predicted"], row["measured"]
    ratio = "—"
    if p["lr_edge"] and m["lr_edge"]:
        r = p["lr_edge"] / m["lr_edge"]
        ratio = f"{r:.2f}×"
    if p["lr_edge"] is None and p.get("no_edge_below"):
        pred = f"none below {_n(p['no_edge_below'])} (no short run overflowed)"
    else:
        pred = (
            "no prediction (adaptive)"
            if p["lr_edge"] is None and p.get("adaptive")
            else (
                f"{_n(p['lr_edge'])} ({_n(p['lr_edge_spread'][0])} – {_n(p['lr_edge_spread'][1])})"
                if p["lr_edge"]
                else "—"
            )
        )
    by = []
    for name, cats in p.get("by", {}).items():
        for cat, v in cats.items():
            got = m["by"].get(name, {}).get(cat)
            by.append(f"{cat}: {_n(v['lr_edge'])} vs {_n(got)}")
    share = 100 * row["edge_seconds"] / row["study_seconds"]
    return (
        f"| {Path(row['space']).stem} | {row['trials']}×{row['epochs']} | {m['diverged']}/{m['finished']} | "
        f"{_n(m['lr_edge'])} | {pred} | {ratio} | {'; '.join(by) or ''} | {row['edge_seconds']:.1f} s | "
        f"{row['study_seconds']:.0f} s | {share:.0f} % |"
    )


if __name__ == "__main__":
    sys.exit(main())
