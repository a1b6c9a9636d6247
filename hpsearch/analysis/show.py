"""``hpsearch show``: the best and worst trials that learned, and the failed ones by kind, as tables."""

from __future__ import annotations

import re

import pandas as pd

from hpsearch._args import add_results_dir, whole
from hpsearch.results import (
    Results,
    aliases,
    column,
    open_results,
    where,
)
from hpsearch.results.tables import render as render_sections
from hpsearch.results.tables import sections as table_sections

FORMATS = ("text", "markdown", "csv")

# ---------------------------------------------------------------- show


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument(
        "--top",
        type=whole("--top", 0),
        default=10,
        metavar="K",
        help="completed trials in the best table (default: 10; 0 hides it)",
    )
    p.add_argument(
        "--worst",
        type=whole("--worst", 0),
        default=10,
        metavar="K",
        help="completed trials in the worst table (default: 10; 0 hides it)",
    )
    p.add_argument(
        "--sort",
        default=None,
        metavar="COLUMN",
        help="order the rows of every table by this column, e.g. lr or seconds; the best and worst K "
        "are still chosen by the metric and keep their rank (default: by the metric)",
    )
    p.add_argument("--desc", action="store_true", help="with --sort: largest first (default: smallest first)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text tables, markdown (for a report), or one csv of the rows shown with a 'table' column (default: text)",
    )
    p.add_argument(
        "--where",
        default=None,
        metavar="QUERY",
        help="keep only the trials matching a pandas query, e.g. \"lr > 0.1 and normalizer == 'z_score'\" "
        "(default: all trials)",
    )


def sections(res: Results, df: pd.DataFrame, top: int, worst: int):
    """The tables ``show`` prints: the same as ``run``'s and summary.md's (:func:`hpsearch.results.tables.sections`)."""
    return table_sections(df, res.metric, res.params, top, worst)


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
        lines += render_sections([s], [], markdown=md)
        if s.key == "failed":
            lines += _sharpness_stories(res, s.rows)
    lines += render_sections([], notes, markdown=md)
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
