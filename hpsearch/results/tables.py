"""The tables people read: best, worst and diverged trials, as fixed-width text or Markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpsearch.results.columns import INT_COLUMNS, SHORT
from hpsearch.vocabulary import DIVERGED_REASONS, FAILURES, METRICS, OK, OUTCOMES


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
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
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


def table(
    df: pd.DataFrame, columns: list[str], *, rank: bool = False, markdown: bool = False, headers: dict | None = None
) -> str:
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
    ascending = (METRICS.get(metric, "maximize") == "minimize") != worst  # best first, unless worst is asked
    done["_n"] = done["number"]
    return done.sort_values(["value", "_n"], ascending=[ascending, True]).drop(columns="_n")


@dataclass
class Section:
    """One table: which rows, which columns, under which title."""

    key: str  # best | worst | failed | pruned | crashed
    title: str
    rows: pd.DataFrame
    columns: list[str]
    headers: dict


def _interrupted(df: pd.DataFrame) -> pd.Series:
    """FAIL rows that are no result: interrupted and run again (``retried_as``), or a dropped duplicate."""
    fail = df["state"] == "FAIL"
    again = df["retried_as"].notna() if "retried_as" in df else pd.Series(False, index=df.index)
    reason = df["fail_reason"].astype("string").fillna("") if "fail_reason" in df else pd.Series("", index=df.index)
    return fail & (again | reason.str.startswith("interrupted") | reason.str.startswith("duplicate"))


def counts_line(df: pd.DataFrame) -> str:
    """``80 trials: 59 ok, 21 failed (dead 15, overflow 6), 4 stopped by the pruner, 1 crashed, 3 running``."""
    failed = failed_mask(df)
    ok = int(((df["outcome"] == OK) & df["state"].isin(["COMPLETE", "PRUNED"])).sum())
    detail = kinds_text(kind_counts(df))
    parts = [f"{ok} ok", f"{int(failed.sum())} failed" + (f" ({detail})" if detail else "")]
    pruned = int(((df["state"] == "PRUNED") & ~failed).sum())
    crashed = int(((df["state"] == "FAIL") & ~_interrupted(df)).sum())
    for n, word in (
        (pruned, "stopped by the pruner"),
        (crashed, "crashed or timed out"),
        (int(_interrupted(df).sum()), "interrupted and run again"),
        (int((df["state"] == "RUNNING").sum()), "running"),
    ):
        if n:
            parts.append(f"{n} {word}")
    shown = len(df) - int(_interrupted(df).sum())
    return f"{shown} trial{'s' if shown != 1 else ''}: " + ", ".join(parts)


def sections(
    df: pd.DataFrame, metric: str, params: list[str] | None, top: int = 10, worst: int = 10
) -> tuple[list[Section], list[str]]:
    """The tables of a study and the notes between them, the same for ``run``, summary.md and ``show``.

    One ranking everywhere: completed trials by their value, best first, ties by trial
    number; ``rank`` is the place in that ranking, so the worst table of a study of
    100 shows ranks 100, 99, … (the worst first) whatever the table is cut to.
    """
    cols = display_columns(df, params)
    metric_label = SHORT.get(metric, metric)
    heads = {
        "value": metric_label,
        "best_epoch": "epoch",
        "number": "trial",
        "prune_reason": "reason",
        "div_epoch": "epoch",
        "div_step": "step",
        "div_where": "where",
    }
    value_cols = ["value", "best_epoch"]
    if "test_accuracy" in df and df["test_accuracy"].notna().any():
        value_cols.append("test_accuracy")
    if "stopped_early" in df and df["stopped_early"].notna().any():
        value_cols.append("stopped_early")
        heads["stopped_early"] = "stopped"
    done = ranked(df[df["value"].notna()], metric)
    done.insert(0, "rank", range(1, len(done) + 1))
    out, notes = [], []
    if done.empty:
        notes.append(f"No completed trials ({len(df)} run).")
    else:
        if top:
            best = done.head(top)
            out.append(
                Section(
                    "best",
                    f"Best {len(best)} of {len(done)} completed ({metric}, best epoch)",
                    best,
                    ["rank", *cols, *value_cols],
                    heads,
                )
            )
        if worst:
            rest = done.iloc[min(top, len(done)) :]
            w = rest.tail(worst).iloc[::-1]
            if len(w):
                out.append(
                    Section(
                        "worst",
                        f"Worst {len(w)} completed",
                        w,
                        ["rank", *cols, *[c for c in value_cols if c != "test_accuracy"]],
                        heads,
                    )
                )
    trained = df["state"].isin(["COMPLETE", "PRUNED"])
    bad = df[failed_mask(df)]
    if len(bad):
        where_cols = ["div_where"] if "div_where" in bad and bad["div_where"].notna().any() else []
        # lr·λ_max at the first traced step against the optimizer's stability limit (hpsearch.results.sharpness)
        sharp_cols = [c for c in ("lr_sharpness", "sharpness_limit") if c in bad and bad[c].notna().any()]
        fheads = {
            **heads,
            "lr_sharpness": "lr·λ_max",
            "sharpness_limit": "limit",
            "outcome": "kind",
            "val_accuracy": "last val_acc",
        }
        last = ["val_accuracy"] if "val_accuracy" in bad and bad["val_accuracy"].notna().any() else []
        out.append(
            Section(
                "failed",
                f"Failed {len(bad)} of {int(trained.sum())} ({kinds_text(kind_counts(df))})",
                bad.sort_values("number"),
                [*cols, "outcome", "div_epoch", "div_step", *where_cols, *last, *sharp_cols],
                fheads,
            )
        )
    elif trained.any():
        notes.append(f"No trial failed (0 of {int(trained.sum())}): every finished trial learned.")
    pruned = df[(df["state"] == "PRUNED") & ~failed_mask(df)]
    if len(pruned):
        out.append(
            Section(
                "pruned",
                f"Stopped by the pruner {len(pruned)} (below the others at the same epoch)",
                pruned.sort_values("number"),
                [*cols, "epochs_run", "val_accuracy"],
                {**heads, "epochs_run": "epochs", "val_accuracy": "last val_acc"},
            )
        )
    crashed = df[(df["state"] == "FAIL") & ~_interrupted(df)]
    if len(crashed):
        out.append(
            Section(
                "crashed",
                f"Crashed or timed out {len(crashed)}",
                crashed.sort_values("number"),
                ["number", "fail_reason"],
                {"number": "trial", "fail_reason": "reason"},
            )
        )
    again = df[_interrupted(df)]
    if len(again):
        pairs = ", ".join(
            f"{int(n)}→{int(r)}" if pd.notna(r) else f"{int(n)}"
            for n, r in zip(again["number"], again.get("retried_as", pd.Series(index=again.index)))
        )
        notes.append(f"Interrupted and run again: {len(again)} (trial→re-run: {pairs}); they are no results.")
    running = df[df["state"] == "RUNNING"]
    if len(running):
        notes.append(f"Still running: {len(running)} (trials {', '.join(str(int(n)) for n in running['number'])}).")
    return out, notes


def render(secs: list[Section], notes: list[str], *, markdown: bool = False) -> list[str]:
    """The sections as lines: fixed-width text, or Markdown (``##`` titles and pipe tables)."""
    lines = []
    for s in secs:
        lines.append("")
        lines += [f"## {s.title}", ""] if markdown else [s.title]
        lines.append(table(s.rows, s.columns, markdown=markdown, headers=s.headers))
    for note in notes:
        lines += ["", note]
    return lines


def summary_text(
    df: pd.DataFrame,
    *,
    metric: str = "val_accuracy",
    params: list[str] | None = None,
    top: int = 10,
    worst: int = 10,
    markdown: bool = False,
    about: list[str] | None = None,
) -> str:
    """The tables printed at the end of ``run`` and written to summary.md (the same ones ``show`` prints).

    ``about`` are header lines (study, data set, space file); with ``markdown`` they
    become the document's title and a line under it.
    """
    secs, notes = sections(df, metric, params, top, worst)
    lines = []
    if markdown:
        head, *rest = about or ["hpsearch study"]
        lines += [f"# {head}", ""] + [f"{line}  " for line in rest] + [counts_line(df) if len(df) else "no trials yet"]
    elif about:
        lines += about
    body = render(secs, notes, markdown=markdown)
    if not lines and body and body[0] == "":
        body = body[1:]
    return "\n".join(lines + body) + "\n"
