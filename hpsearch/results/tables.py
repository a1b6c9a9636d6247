"""The tables people read: best, worst and diverged trials, as fixed-width text or Markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hpsearch.results.columns import INT_COLUMNS, SHORT
from hpsearch.vocabulary import DIVERGED_REASONS


def diverged_mask(df: pd.DataFrame) -> pd.Series:
    return (df["state"] == "PRUNED") & df["prune_reason"].isin(DIVERGED_REASONS)


def _fmt(value, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if column in INT_COLUMNS or column.startswith("hidden_"):
            return str(int(v)) if v.is_integer() else f"{v:.4g}"
        if column in ("value", "test_accuracy", "val_accuracy", "train_accuracy"):
            return f"{v:.4f}"
        return f"{v:.3g}"
    return str(value)


def table(df: pd.DataFrame, columns: list[str], *, rank: bool = False, markdown: bool = False,
          headers: dict | None = None) -> str:
    """A fixed-width (or markdown) table of ``columns`` with readable numbers."""
    headers = {**SHORT, **(headers or {})}
    cols = [c for c in columns if c in df.columns]
    body = [[_fmt(v, c) for v, c in zip(row, cols)] for row in df[cols].itertuples(index=False)]
    head = [headers.get(c, c) for c in cols]
    if rank:
        head = ["rank", *head]
        body = [[str(i + 1), *r] for i, r in enumerate(body)]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), *(fmt(r) for r in body)])


def display_columns(df: pd.DataFrame, params: list[str] | None) -> list[str]:
    """The parameters worth comparing: searched ones (per-layer widths folded into ``hidden``)."""
    params = list(params or [c for c in df.columns if c.startswith("hidden_")])
    cols = ["number"]
    if any(p.startswith("hidden_") or p == "n_layers" for p in params) and "hidden" in df.columns:
        cols.append("hidden")
    cols += [p for p in params if not p.startswith("hidden_") and p != "n_layers"]
    return cols


def ranked(df: pd.DataFrame, metric: str, *, worst: bool = False) -> pd.DataFrame:
    done = df[df["state"] == "COMPLETE"].copy()
    ascending = (metric == "val_loss") != worst  # best first, unless worst is asked
    done["_n"] = done["number"]
    return done.sort_values(["value", "_n"], ascending=[ascending, True]).drop(columns="_n")


def summary_text(df: pd.DataFrame, *, metric: str = "val_accuracy", params: list[str] | None = None,
                 top: int = 10, worst: int = 10, markdown: bool = False) -> str:
    """The best, worst and diverged tables as printed at the end of ``run``."""
    cols = display_columns(df, params)
    value_cols = ["value", "best_epoch"] + (["test_accuracy"] if df.get("test_accuracy") is not None and df["test_accuracy"].notna().any() else [])
    heads = {"value": SHORT.get(metric, metric), "best_epoch": "epoch", "number": "trial"}
    n = len(df)
    done = ranked(df, metric)
    parts = []
    fence = (lambda s: f"```\n{s}\n```") if markdown else (lambda s: s)
    if done.empty:
        parts.append(f"No completed trials yet ({n} run).")
    else:
        parts.append(f"Best {min(top, len(done))} of {len(done)} completed ({metric}, best epoch)")
        parts.append(fence(table(done.head(top), cols + value_cols, rank=True, headers=heads)))
        if len(done) > top:  # the worst of those not already shown as best
            w = ranked(df, metric, worst=True).head(min(worst, len(done) - top))
            parts.append(f"\nWorst {len(w)} completed")
            parts.append(fence(table(w, cols + ["value", "best_epoch"], rank=True, headers=heads)))
    div = df[diverged_mask(df)] if n else df
    if len(div):
        counts = div["prune_reason"].value_counts()
        detail = ", ".join(f"{r} {int(counts.get(r, 0))}" for r in DIVERGED_REASONS if counts.get(r, 0))
        parts.append(f"\nDiverged {len(div)} of {n} (pruned: {detail})")
        parts.append(fence(table(div.sort_values("number"), cols + ["prune_reason", "div_epoch", "div_step"],
                                 headers={**heads, "prune_reason": "reason", "div_epoch": "epoch", "div_step": "step"})))
    else:
        parts.append(f"\nDiverged 0 of {n}.")
    others = df[(df["state"] == "PRUNED") & ~diverged_mask(df)] if n else df
    if len(others):
        parts.append(f"Pruned by the pruner: {len(others)}.")
    failed = df[df["state"] == "FAIL"] if n else df
    if len(failed):
        live = failed[failed["retried_as"].isna()] if "retried_as" in failed else failed
        parts.append(f"\nFailed {len(failed)} ({len(failed) - len(live)} interrupted and run again)")
        parts.append(fence(table(failed.sort_values("number"), ["number", "fail_reason", "retried_as"],
                                 headers={"number": "trial", "fail_reason": "reason", "retried_as": "re-run as"})))
    return "\n".join(parts) + "\n"
