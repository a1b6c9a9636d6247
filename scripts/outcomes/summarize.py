"""One line per study of the outcome measurements in the README: kinds, the learned line, and how
far the trials that learned sit above chance and the failed ones below.

    python scripts/outcomes/summarize.py RESULTS_DIR [RESULTS_DIR ...]
"""

from __future__ import annotations

import sys

import pandas as pd

from hpsearch.mlp._outcome import learned_line
from hpsearch.results import kind_counts, kinds_text, open_results


def main(paths: list[str]) -> None:
    print(
        "| study | trials | ok | failed (kinds) | chance | learned line | lowest last val_acc of ok | "
        "highest last val_acc of failed | epochs run / asked |"
    )
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for p in paths:
        res = open_results(p)
        df = res.finished
        ok = df[df["outcome"] == "ok"]
        bad = df[df["outcome"] != "ok"]
        chance = float(pd.to_numeric(df["chance"]).median())
        epochs = int(res.space.study.epochs) if res.space is not None else None
        asked = len(df) * epochs if epochs else None
        print(
            f"| {res.name} | {len(df)} | {len(ok)} | {len(bad)} ({kinds_text(kind_counts(df))}) | {chance:.4f} | "
            f"{learned_line(chance):.4f} | {ok['val_accuracy'].min():.4f} | "
            f"{bad['val_accuracy'].max() if bad['val_accuracy'].notna().any() else float('nan'):.4f} | "
            f"{int(df['epochs_run'].sum())} / {asked} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
