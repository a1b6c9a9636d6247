"""The tables people read: best, worst and diverged trials, as fixed-width text or Markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hpsearch.results.columns import INT_COLUMNS, SHORT
from hpsearch.vocabulary import DIVERGED_REASONS, FAILURES, OK, OUTCOMES


def diverged_mask(df: pd.DataFrame) -> pd.Series:
    return (df["state"] == "PRUNED") & df["prune_reason"].isin(DIVERGED_REASONS)


def derive_outcome(df: pd.DataFrame) -> pd.Series:
    """The ``outcome`` of each trial of a trials.csv written before that column existed: ``ok``
    for a completed trial, the reason for a pruned one that failed (overflow, nan...); empty
    for a trial stopped by the pruner, failed or still running (nothing says how it ended)."""
    out = pd.Series(np.nan, index=df.index, dtype=object)
    out[df["state"] == "COMPLETE"] = OK
    reason = df["prune_reason"] if "prune_reason" in df else pd.Series(np.nan, index=df.index)
    failed = (df["state"] == "PRUNED") & reason.isin(FAILURES)
    out[failed] = reason[failed]
    return out


def failed_mask(df: pd.DataFrame) -> pd.Series:
    """Trials that ended in a failure of any kind (``outcome`` not ``ok``)."""
    return df["outcome"].isin(FAILURES) & df["state"].isin(["COMPLETE", "PRUNED"])


def kind_counts(df: pd.DataFrame) -> dict[str, int]:
    """``{kind: trials}`` for the failure kinds present, in the vocabulary's order."""
    counts = df.loc[failed_mask(df), "outcome"].value_counts()
    return {k: int(counts[k]) for k in OUTCOMES if k != OK and counts.get(k, 0)}


def kinds_text(counts: dict[str, int]) -> str:
    """``dead 31, collapsed 6, overflow 2``: most common first."""
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


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
    bad = df[failed_mask(df)] if n else df
    if len(bad):
        parts.append(f"\nFailed {len(bad)} of {n} (pruned: {kinds_text(kind_counts(df))})")
        parts.append(fence(table(bad.sort_values("number"), cols + ["outcome", "div_epoch", "div_step"],
                                 headers={**heads, "outcome": "kind", "div_epoch": "epoch", "div_step": "step"})))
    else:
        parts.append(f"\nFailed 0 of {n}: every finished trial learned.")
    others = df[(df["state"] == "PRUNED") & ~failed_mask(df)] if n else df
    if len(others):
        parts.append(f"Pruned by the pruner: {len(others)}.")
    failed = df[df["state"] == "FAIL"] if n else df
    if len(failed):
        live = failed[failed["retried_as"].isna()] if "retried_as" in failed else failed
        parts.append(f"\nFailed {len(failed)} ({len(failed) - len(live)} interrupted and run again)")
        parts.append(fence(table(failed.sort_values("number"), ["number", "fail_reason", "retried_as"],
                                 headers={"number": "trial", "fail_reason": "reason", "retried_as": "re-run as"})))
    return "\n".join(parts) + "\n"
