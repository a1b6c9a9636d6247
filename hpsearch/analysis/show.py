"""``hpsearch show``: the best and worst trials that learned, and the failed ones by kind, as tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpsearch._args import whole
from hpsearch.results import (
    Results,
    aliases,
    column,
    display_columns,
    failed_mask,
    kind_counts,
    kinds_text,
    open_results,
    ranked,
    table,
    where,
)

FORMATS = ("text", "markdown", "csv")

# ---------------------------------------------------------------- show


def add_arguments(p) -> None:
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a study's results directory (results/<name>)")
    p.add_argument("--top", type=whole("--top", 0), default=10, metavar="K",
                   help="completed trials in the best table (default: 10; 0 hides it)")
    p.add_argument("--worst", type=whole("--worst", 0), default=10, metavar="K",
                   help="completed trials in the worst table (default: 10; 0 hides it)")
    p.add_argument("--sort", default=None, metavar="COLUMN",
                   help="order the rows of every table by this column, e.g. lr or seconds; the best and worst K "
                        "are still chosen by the metric and keep their rank (default: by the metric)")
    p.add_argument("--desc", action="store_true", help="with --sort: largest first (default: smallest first)")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text tables, markdown (for a report), or one csv of the rows shown with a 'table' column "
                        "(default: text)")
    p.add_argument("--where", default=None, metavar="QUERY",
                   help="keep only the trials matching a pandas query, e.g. \"lr > 0.1 and normalizer == 'z_score'\" "
                        "(default: all trials)")


@dataclass
class _Section:
    key: str  # best | worst | diverged
    title: str
    rows: pd.DataFrame
    columns: list[str]
    headers: dict


def sections(res: Results, df: pd.DataFrame, top: int, worst: int) -> tuple[list[_Section], list[str]]:
    """The tables ``show`` prints, and the notes between them (no completed trials, none failed...)."""
    cols = display_columns(df, res.params)
    heads = {"value": res.metric_label, "best_epoch": "epoch", "number": "trial", "prune_reason": "reason",
             "div_epoch": "epoch", "div_step": "step", "div_where": "where"}
    value_cols = ["value", "best_epoch"]
    if "test_accuracy" in df and df["test_accuracy"].notna().any():
        value_cols.append("test_accuracy")
    done = ranked(df[df["value"].notna()], res.metric)
    done.insert(0, "rank", range(1, len(done) + 1))
    out, notes = [], []
    if done.empty:
        notes.append(f"No completed trials ({len(df)} {'match' if len(df) != len(res.trials) else 'run'}).")
    else:
        if top:
            best = done.head(top)
            out.append(_Section("best", f"Best {len(best)} of {len(done)} completed ({res.metric}, best epoch)",
                                best, ["rank", *cols, *value_cols], heads))
        if worst:
            rest = done.iloc[min(top, len(done)):]
            w = rest.tail(worst).iloc[::-1]
            if len(w):
                out.append(_Section("worst", f"Worst {len(w)} completed", w, ["rank", *cols, "value", "best_epoch"],
                                    heads))
    bad = df[failed_mask(df)]
    if len(bad):
        where_cols = ["div_where"] if "div_where" in bad and bad["div_where"].notna().any() else []
        # lr·λ_max at the first traced step against the optimizer's stability limit (hpsearch.results.sharpness)
        sharp_cols = [c for c in ("lr_sharpness", "sharpness_limit") if c in bad and bad[c].notna().any()]
        heads = {**heads, "lr_sharpness": "lr·λ_max", "sharpness_limit": "limit", "outcome": "kind",
                 "val_accuracy": "last val_acc"}
        last = ["val_accuracy"] if "val_accuracy" in bad and bad["val_accuracy"].notna().any() else []
        out.append(_Section("failed", f"Failed {len(bad)} of {len(df)} ({kinds_text(kind_counts(df))})",
                            bad.sort_values("number"),
                            [*cols, "outcome", "div_epoch", "div_step", *where_cols, *last, *sharp_cols], heads))
    else:
        notes.append(f"No trial failed (0 of {len(df)}): every finished trial learned.")
    return out, notes


def render(res: Results, df: pd.DataFrame, args) -> str:
    secs, notes = sections(res, df, args.top, args.worst)
    sort = column(res, args.sort, "--sort") if args.sort else None
    for s in secs:
        if sort:
            s.rows = s.rows.sort_values([sort, "number"], ascending=[not args.desc, True], na_position="last")
            if sort not in s.columns and s.rows[sort].notna().any():
                s.columns.append(sort)
        if args.where:
            for col in _mentioned(args.where, res):
                if col not in s.columns and s.rows[col].notna().any():
                    s.columns.append(col)
    if args.format == "csv":
        frames = [s.rows.assign(table=s.key) for s in secs]
        if not frames:
            return pd.DataFrame(columns=["table", *res.trials.columns]).to_csv(index=False)
        rows = pd.concat(frames, ignore_index=True)
        if "rank" in rows:
            rows["rank"] = rows["rank"].astype("Int64")
        lead = ["table", "rank"] if "rank" in rows else ["table"]
        return rows[lead + [c for c in rows.columns if c not in lead]].to_csv(index=False)
    md = args.format == "markdown"
    better = "higher" if res.maximize else "lower"
    head = f"study {res.name} · {res.counts()} · metric {res.metric} ({better} is better)"
    lines = [f"# {head}" if md else head]
    if args.where:
        lines.append(f"where {args.where}: {len(df)} of {len(res.trials)} trials")
    if res.guessed:
        lines.append(f"(no meta.json: metric and parameters guessed from trials.csv — {', '.join(res.params)})")
    for s in secs:
        lines.append("")
        lines += [f"## {s.title}", ""] if md else [s.title]
        lines.append(table(s.rows, s.columns, markdown=md, headers=s.headers))
        if s.key == "failed":
            lines += _sharpness_stories(res, s.rows)
    for note in notes:
        lines.append("")
        lines.append(note)
    _other_states(df, lines, md)
    return "\n".join(lines) + "\n"


def _sharpness_stories(res: Results, div: pd.DataFrame, limit: int = 10) -> list[str]:
    """One line per diverged trial whose trace holds the sharpness: lr·λ_max against its limit."""
    from hpsearch.results.sharpness import story

    trace = res.divergence
    if trace.empty or "sharpness" not in trace or trace["sharpness"].isna().all():
        return []
    out = []
    for _, row in div.iterrows():
        text = story(int(row["number"]), trace[trace["number"] == row["number"]], row)
        if text:
            out.append(f"  {text}")
    more = len(out) - limit
    out = out[:limit] + ([f"  … and {more} more (divergence.csv holds every trace)"] if more > 0 else [])
    return ["", "Why (sharpness λ_max of the loss, measured as the last steps are replayed):", *out] if out else []


def _other_states(df: pd.DataFrame, lines: list[str], md: bool) -> None:
    others = df[(df["state"] == "PRUNED") & ~failed_mask(df)]
    if len(others):
        lines += ["", f"Stopped by the pruner: {len(others)} (trials {_numbers(others)})."]
    failed = df[df["state"] == "FAIL"]
    if len(failed):
        lines += ["", f"## Failed {len(failed)}", ""] if md else ["", f"Failed {len(failed)}"]
        retried = "retried_as" in failed and failed["retried_as"].notna().any()
        cols = ["number", "fail_reason"] + (["retried_as"] if retried else [])
        lines.append(table(failed.sort_values("number"), cols, markdown=md,
                           headers={"number": "trial", "fail_reason": "reason", "retried_as": "re-run as"}))
    running = df[df["state"] == "RUNNING"]
    if len(running):
        lines += ["", f"Still running: {len(running)} (trials {_numbers(running)}); run show again for their results."]


def _numbers(df: pd.DataFrame, limit: int = 12) -> str:
    nums = sorted(int(n) for n in df["number"])
    text = ", ".join(map(str, nums[:limit]))
    return text + (f", … {len(nums) - limit} more" if len(nums) > limit else "")


def _mentioned(query: str, res: Results) -> list[str]:
    """Columns named in a --where query, so the tables show what was filtered on."""
    names = re.findall(r"`([^`]+)`|\b([A-Za-z_]\w*)\b", query)
    alias = aliases(res)
    out = []
    for quoted, bare in names:
        name = alias.get(quoted or bare, quoted or bare)
        if name in res.trials.columns and name not in out:
            out.append(name)
    return out


def main(args) -> int:
    res = open_results(args.results_dir)
    if args.sort:
        column(res, args.sort, "--sort")  # an unknown column is an error even when no table would show it
    df = where(res, args.where) if args.where else res.trials
    print(render(res, df, args), end="")
    return 0

