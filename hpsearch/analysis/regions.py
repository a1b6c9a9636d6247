"""``hpsearch regions``: where in the space training fails, which way, and how close the best runs sit to it.

Every trial that ran to a verdict counts: it learned (outcome ``ok``) or failed in one of
the kinds of ``hpsearch.vocabulary.FAILURES`` (overflow, nan, collapsed, dead, stalled).
For each parameter the trials are binned (see :mod:`hpsearch.analysis._binning`) and each
bin shows how many ran, how many learned, how many failed of each kind, and the best and
median metric of the ones that learned. A shallow decision tree (see
:mod:`hpsearch.analysis._boundary`) turns "failed (any kind)" into a few rules in words;
a one-parameter edge per kind says where each kind starts; ``--check OTHER`` applies the
tree fitted here to another study of the same space and counts what it gets right;
``--format json`` gives all of it to programs.

A trial counts when it finished: completed, or pruned (failed, or stopped by the pruner).
Failed-to-run (FAIL) and running trials are left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch._args import add_results_dir, whole
from hpsearch.analysis._binning import NOT_SAMPLED, Binning, make_binning, num
from hpsearch.analysis._boundary import (
    EDGE_P,
    EDGE_RATE,
    MIN_CLASS,
    MIN_TRIALS,
    Boundary,
    CategoryEdges,
    Edge,
    Feature,
    Rule,
    best_boundary,
    design,
    divergence_edge,
    event,
    failure_edge,
    finished,
    fit_boundary,
    primary_edge,
    tree_rules,
)
from hpsearch.errors import ResultsError
from hpsearch.results import Results, diverged_mask, kind_counts, kinds_text, open_results, ranked, where
from hpsearch.vocabulary import FAILURES, OK

__all__ = [
    "BEST_K",
    "Binning",
    "BinRow",
    "Boundary",
    "CategoryEdges",
    "best_boundary",
    "Edge",
    "Feature",
    "NOT_SAMPLED",
    "Rule",
    "bin_rows",
    "boundary",
    "check",
    "design",
    "divergence_edge",
    "diverged_mask",
    "failure_edge",
    "fit_boundary",
    "make_binning",
    "num",
    "primary_edge",
    "report_lines",
    "tree_rules",
]

BEST_K = 10
FORMATS = ("text", "json")
_finished = finished  # the name scripts/calibrate_edge.py imports


def _metric(res: Results, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4f}" if res.metric == "val_accuracy" else f"{v:.4g}"


def _pct(d: int, n: int) -> str:
    return f"{round(100 * d / n)} %" if n else "—"


def _finite(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


# ---------------------------------------------------------------- bins


@dataclass
class BinRow:
    label: str
    trials: int
    failed: int
    best: float | None
    median: float | None
    has_best: bool = False
    kinds: dict = field(default_factory=dict)  # failure kind -> trials
    diverged: int = 0  # overflow + nan

    @property
    def ok(self) -> int:
        return self.trials - self.failed

    def as_dict(self) -> dict:
        return {
            "bin": self.label,
            "trials": self.trials,
            "ok": self.ok,
            "failed": self.failed,
            "kinds": dict(self.kinds),
            "fail_rate": self.failed / self.trials if self.trials else None,
            "best": _finite(self.best),
            "median": _finite(self.median),
            "best_run": self.has_best,
        }


def _learned(df: pd.DataFrame) -> pd.DataFrame:
    """Trials that learned and have a score."""
    return df[df["value"].notna() & (df["outcome"] == OK)]


def bin_rows(res: Results, df: pd.DataFrame, binning: Binning) -> list[BinRow]:
    """Per bin: finished trials, failures (any kind and per kind), best and median metric of those that learned."""
    fin = finished(df)
    idx = binning.assign(fin[binning.param]) if binning.param in fin else np.full(len(fin), -1)
    failed = event(fin).astype(bool)
    outcome = fin["outcome"].to_numpy(dtype=object)
    div = diverged_mask(fin).to_numpy()
    values = fin["value"].where(fin["outcome"] == OK).to_numpy(dtype=float)
    best_number = _best_number(res, fin)
    numbers = fin["number"].to_numpy()
    rows = []
    for i, label in [*enumerate(binning.labels), (-1, NOT_SAMPLED)]:
        m = idx == i
        if i == -1 and not m.any():
            continue
        v = values[m & ~np.isnan(values)]
        best = (v.max() if res.maximize else v.min()) if len(v) else None
        kinds = {k: int((m & (outcome == k)).sum()) for k in FAILURES if (m & (outcome == k)).any()}
        rows.append(
            BinRow(
                label,
                int(m.sum()),
                int(failed[m].sum()),
                best,
                float(np.median(v)) if len(v) else None,
                best_number is not None and best_number in numbers[m],
                kinds,
                int(div[m].sum()),
            )
        )
    return rows


def _best_number(res: Results, df: pd.DataFrame):
    done = _learned(df)
    if done.empty:
        return None
    return int(done.loc[done["value"].idxmax() if res.maximize else done["value"].idxmin(), "number"])


def shown_kinds(frames: list[pd.DataFrame]) -> list[str]:
    """The failure kinds that occur in any of ``frames``, in the vocabulary's order."""
    seen = set()
    for df in frames:
        seen |= set(kind_counts(finished(df)))
    return [k for k in FAILURES if k in seen]


# ---------------------------------------------------------------- tables


def _grid(rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to width; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    ]


def param_table(res: Results, df: pd.DataFrame, binning: Binning, kinds: list[str]) -> list[str]:
    rows = bin_rows(res, df, binning)
    lab = res.metric_label
    head = [
        f"Failure by {binning.param} ({binning.kind})",
        "trials",
        "ok",
        *kinds,
        "fail rate",
        f"best {lab}",
        f"median {lab}",
        "",
    ]
    body = [
        [
            f"  {r.label}",
            str(r.trials),
            str(r.ok),
            *(str(r.kinds.get(k, 0)) for k in kinds),
            _pct(r.failed, r.trials),
            _metric(res, r.best),
            _metric(res, r.median),
            "◀ best run" if r.has_best else "",
        ]
        for r in rows
    ]
    return _grid([head, *body])


def _row_cells(res: Results, r: BinRow) -> list[str]:
    return [str(r.trials), str(r.failed), _pct(r.failed, r.trials), _metric(res, r.best), _metric(res, r.median)]


def compare_table(studies: list[Results], frames: list[pd.DataFrame], labels: list[str], binning: Binning) -> list[str]:
    """The per-bin table of two (or more) studies side by side, rows lined up on one shared binning."""
    per = [bin_rows(res, df, binning) if binning.param in res.trials else [] for res, df in zip(studies, frames)]
    lab = studies[0].metric_label
    cols = ["trials", "failed", "rate", f"best {lab}", "median", ""]
    head = [f"Failure by {binning.param} ({binning.kind})"]
    for k in range(len(studies)):
        head += (["│"] if k else []) + cols
    body = []
    for text in dict.fromkeys(r.label for rows in per for r in rows):
        line = [f"  {text}"]
        for k, (res, rows) in enumerate(zip(studies, per)):
            r = next((x for x in rows if x.label == text), None)
            cells = _row_cells(res, r) + ["◀ best" if r.has_best else ""] if r else [""] * 6
            line += (["│"] if k else []) + cells
        body.append(line)
    lines = _grid([head, *body])
    # each study's name over its group of columns: the groups start after the label and after each bar
    starts = [len(lines[0].split("  ")[0]) + 2] + [i + 2 for i, ch in enumerate(lines[0]) if ch == "│"]
    title = ""
    for start, label, res in zip(starts, labels, studies):
        missing = "" if binning.param in res.params else f": {binning.param} not searched"
        title = title.ljust(start) + f"[{label}{missing}]"
    return [title.rstrip(), *lines]


def pair_table(res: Results, df: pd.DataFrame, a: Binning, b: Binning) -> list[str]:
    fin = finished(df)
    ia, ib = a.assign(fin[a.param]), b.assign(fin[b.param])
    fail = event(fin)
    head = [f"  {a.param} ↓  {b.param} →", *b.labels]
    body = []
    for i, label in enumerate(a.labels):
        cells = [f"  {label}"]
        for j in range(len(b.labels)):
            m = (ia == i) & (ib == j)
            n, d = int(m.sum()), int(fail[m].sum())
            cells.append(f"{round(100 * d / n)}% ({d}/{n})" if n else "·")
        body.append(cells)
    title = (
        f"Failure rate by {a.param} × {b.param}: rate (failed/trials); "
        f"· = no trial ({int(((ia >= 0) & (ib >= 0)).sum())} trials with both)"
    )
    return [title, *_grid([head, *body])]


# ---------------------------------------------------------------- the boundary in words


def _numeric(res: Results, params: list[str]) -> list[str]:
    return [p for p in params if res.is_numeric(p)]


def boundary(res: Results, df: pd.DataFrame, params: list[str], n_bins: int) -> list[str]:
    """The boundary section: rules with counts, the edge in one sentence, per-kind and per-category
    edges, and how close the best runs sit to the edge; honest words when the data are too few."""
    fin = finished(df)
    n, d = len(fin), int(event(fin).sum())
    lines: list[str] = []
    edge = primary_edge(res, df, _numeric(res, params))
    if n < MIN_TRIALS and 0 < d < n:
        lines.append(
            f"Boundary: only {n} finished trials ({d} failed) — too few to say where failure starts; run more trials."
        )
        lines += _few_failed(res, fin, params)
        return lines + edge_lines(res, df, params, None, n_bins)
    if d == 0:
        lines.append(
            f"Boundary: no trial failed (0 of {n} finished) — every trial learned; no failure inside the "
            f"space searched."
        )
        return lines + edge_lines(res, df, params, None, n_bins)
    if d == n:
        lines.append(
            f"Boundary: every finished trial failed ({d} of {n}: {kinds_text(kind_counts(fin))}) — nothing "
            f"in the space searched learned; move or shrink the ranges (a lower learning rate first)."
        )
        return lines
    if d < MIN_CLASS or n - d < MIN_CLASS:
        few = "failed" if d < MIN_CLASS else "learned"
        count = d if d < MIN_CLASS else n - d
        lines.append(f"Boundary: only {count} of {n} finished trials {few} — too few to fit a boundary.")
        lines += _few_failed(res, fin, params)
        return lines + edge_lines(res, df, params, edge, n_bins)
    rules, about = tree_rules(res, df, params)
    lines.append(f"Boundary ({about}; {n} trials, {d} failed: {kinds_text(kind_counts(fin))}):")
    if len(rules) <= 1:
        lines.append("  no parameter separates the failed trials from the others (the tree found no useful split)")
    else:
        width = max(len(r.words) for r in rules)
        for r in rules:
            lines.append(f"  {r.words.ljust(width)}  → failed {r.failed} of {r.trials} ({_pct(r.failed, r.trials)})")
        if max(r.failed / r.trials for r in rules) < EDGE_RATE:
            lines.append("  no region where most trials fail: failure looks scattered across the space")
    if n < 30 or d < 8:
        lines.append(f"  (few trials: {n} finished, {d} failed — read these rules as hints)")
    if edge is not None:
        lines.append(f"In short: training fails when {edge.words()}.")
        lines += category_thresholds(res, df, params, edge)
    else:
        lines.append(
            "In short: no single parameter has a clear edge (a split where most trials fail, "
            f"with at least {MIN_CLASS} of them, p < {EDGE_P})."
        )
    lines += kind_lines(res, df, params)
    return lines + edge_lines(res, df, params, edge, n_bins)


def kind_edges(res: Results, df: pd.DataFrame, params: list[str]) -> dict[str, Edge | None]:
    """Each failure kind present: its own one-parameter edge (against every other trial), or None."""
    fin = finished(df)
    counts = kind_counts(fin)
    return {k: primary_edge(res, df, _numeric(res, params), kinds=(k,)) for k in counts}


def kind_lines(res: Results, df: pd.DataFrame, params: list[str]) -> list[str]:
    fin = finished(df)
    counts = kind_counts(fin)
    if len(counts) < 2 and not any(k not in ("overflow", "nan") for k in counts):
        return []
    out = ["By kind:"]
    for k, e in kind_edges(res, df, params).items():
        if e is not None:
            out.append(f"  {k} ({counts[k]}): when {e.words()}")
        else:
            out.append(
                f"  {k} ({counts[k]}): no edge of its own"
                + (" (too few)" if counts[k] < MIN_CLASS else " (scattered over the space)")
            )
    return out


def _few_failed(res: Results, fin: pd.DataFrame, params: list[str]) -> list[str]:
    bad = fin[event(fin).astype(bool)].sort_values("number")
    if bad.empty or len(bad) > 5:
        return []
    out = []
    for _, row in bad.iterrows():
        bits = [f"{p} {_fmt(row[p])}" for p in params if p in row and not pd.isna(row[p])]
        out.append(f"  failed: trial {int(row['number'])} ({', '.join(bits)}) — {row['outcome']}")
    return out


def _fmt(v) -> str:
    numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    return num(float(v), 3) if numeric else str(v)


def category_thresholds(res: Results, df: pd.DataFrame, params: list[str], edge: Edge) -> list[str]:
    """Within each category of each categorical parameter: where is the edge of ``edge.param``?"""
    out = []
    for c in params:
        if res.is_numeric(c) or c not in df or c == edge.param:
            continue
        found = {}
        notes = []
        for cat in res.choices(c):
            sub = df[df[c].astype(str) == str(cat)]
            e = failure_edge(res, sub, edge.param, min_leaf=2)
            fin = finished(sub)
            dn = int(event(fin).sum())
            if e is not None and e.side == edge.side:
                found[str(cat)] = e
            elif len(fin) and dn >= 0.9 * len(fin) and dn >= MIN_CLASS:
                notes.append(
                    f"{c} = {cat} it fails at every {edge.param} searched ({dn} of {len(fin)}: "
                    f"{kinds_text(kind_counts(fin))})"
                )
            elif len(fin):
                notes.append(f"{c} = {cat}: {dn} of {len(fin)} failed, no clear edge")
        if len(found) < 1 and not any("every" in n for n in notes):
            continue
        if len(found) == 1 and not notes:
            continue
        for cat, e in found.items():
            out.append(f"  with {c} = {cat}: fails when {e.words()}")
        out += [f"  with {note}" for note in notes]
        if len(found) >= 2:
            (lo_cat, lo), (hi_cat, hi) = (
                min(found.items(), key=lambda kv: kv[1].threshold),
                max(found.items(), key=lambda kv: kv[1].threshold),
            )
            ratio = hi.threshold / lo.threshold if lo.threshold > 0 and edge.log else None
            close = ratio < 1.5 if ratio is not None else abs(hi.threshold - lo.threshold) <= 0.1 * abs(hi.threshold)
            if close:
                out.append(f"  → about the same edge whatever the {c}")
            else:
                factor = f" ({ratio:.1f}× lower)" if ratio else ""
                out.append(
                    f"  → with {lo_cat} the threshold is lower: {edge.param} {num(lo.threshold)} against "
                    f"{num(hi.threshold)} with {hi_cat}{factor}"
                )
    return out


def best_vs_edge(res: Results, df: pd.DataFrame, params: list[str], edge: Edge | None, n_bins: int) -> dict | None:
    """Where the best runs that learned sit against the failure edge: ``param``, ``near`` (within one
    bin on the safe side), ``past`` (on the failing side), ``k``, the best run's value and its distance."""
    done = ranked(_learned(df), res.metric)
    if done.empty:
        return None
    top = done.head(BEST_K)
    k = len(top)
    best = top.iloc[0]
    if edge is None:
        p = "lr" if "lr" in params and res.is_numeric("lr") else next(iter(_numeric(res, params)), None)
        if p is None:
            return {"k": k, "param": None}
        vals = pd.to_numeric(top[p], errors="coerce").dropna()
        return {
            "k": k,
            "param": p,
            "edge": None,
            "low": _finite(vals.min()) if len(vals) else None,
            "high": _finite(vals.max()) if len(vals) else None,
            "best_trial": int(best["number"]),
        }
    p, t = edge.param, edge.threshold
    rng = res.searched_range(p) or (t, t)
    width = _bin_width(rng, edge.log, n_bins)
    if edge.side == ">":
        lo, hi = (t / width, t) if edge.log else (t - width, t)
    else:
        lo, hi = (t, t * width) if edge.log else (t, t + width)
    vals = pd.to_numeric(top[p], errors="coerce")
    bv = float(best[p]) if not pd.isna(best[p]) else None
    distance = None
    if bv is not None:
        distance = max(t / bv, bv / t) if edge.log and bv > 0 else abs(t - bv)
    return {
        "k": k,
        "param": p,
        "edge": t,
        "side": edge.side,
        "log": edge.log,
        "near_low": lo,
        "near_high": hi,
        "near": int(((vals >= lo) & (vals <= hi)).sum()),
        "past": int(((vals > t) if edge.side == ">" else (vals <= t)).sum()),
        "best_trial": int(best["number"]),
        "best_value": _finite(bv),
        "best_metric": _finite(best["value"]),
        "best_past": bv is not None and (bv > t) == (edge.side == ">"),
        "distance": _finite(distance),
    }


def edge_lines(res: Results, df: pd.DataFrame, params: list[str], edge: Edge | None, n_bins: int) -> list[str]:
    """How close the best runs sit to the edge (UX: "The best runs sit just below the edge ...")."""
    b = best_vs_edge(res, df, params, edge, n_bins)
    if b is None:
        return ["No trial learned, so no best runs to place against the edge."]
    k, p = b["k"], b["param"]
    if p is None:
        return []
    if edge is None:
        rng = res.searched_range(p)
        if b["low"] is None or rng is None:
            return []
        lead = (
            "No edge to be near (nothing failed)"
            if not event(finished(df)).any()
            else "No clear edge to measure against"
        )
        text = (
            f"{lead}: the best {k} have {p} {num(b['low'])} – {num(b['high'])} "
            f"(searched {num(rng[0])} – {num(rng[1])})."
        )
        width = _bin_width(rng, res.is_log(p), n_bins)
        top_bin = rng[1] / width if res.is_log(p) else rng[1] - width
        vals = pd.to_numeric(ranked(_learned(df), res.metric).head(k)[p], errors="coerce").dropna()
        if (vals >= top_bin).sum() >= k / 2:
            text += f" Most sit in the top bin of {p}: the edge may lie beyond the range searched."
        return [text]
    t, near, past = b["edge"], b["near"], b["past"]
    where_word = "below" if edge.side == ">" else "above"
    where_best = ""
    if b["best_value"] is not None:
        gap = (
            f"{b['distance']:.1f}× {where_word} the edge"
            if edge.log and b["best_value"] > 0
            else f"{num(b['distance'])} {where_word} the edge"
        )
        if b["best_past"]:
            gap = "past the edge, where most trials fail"
        where_best = f"; the best, trial {b['best_trial']}, has {p} {num(b['best_value'])} ({gap})"
    span = f"{p} {num(b['near_low'])} – {num(b['near_high'])}"
    if near + past < math.ceil(k / 2):
        return [
            f"The best runs are well clear of the edge: only {near + past} of the best {k} have {p} within one "
            f"bin of it or past it ({span}, edge at {p} {num(t)}){where_best}."
        ]
    if not past:
        return [
            f"The best runs sit just {where_word} the edge: {near} of the best {k} have {span} (one bin "
            f"{where_word} the edge at {p} {num(t)}){where_best}."
        ]
    return [
        f"The best runs sit close to the edge at {p} {num(t)}: {near} of the best {k} within one bin {where_word} "
        f"it ({span}) and {past} past it, where most trials fail{where_best}."
    ]


def _bin_width(rng, log: bool, n_bins: int) -> float:
    lo, hi = rng
    if log and lo > 0 and hi > lo:
        return (hi / lo) ** (1 / n_bins)
    return (hi - lo) / n_bins if hi > lo else 0.0


# ---------------------------------------------------------------- --check: the boundary on another study


def same_space(a: Results, b: Results) -> None:
    """Raise unless ``b`` searched the same parameters over the same ranges as ``a``."""
    if sorted(a.params) != sorted(b.params):
        raise ResultsError(
            f"--check {b.path}: not a study of the same space as {a.path} (searched "
            f"{', '.join(b.params) or 'nothing'}; {a.path} searched {', '.join(a.params)})"
        )
    if a.space is not None and b.space is not None:
        da, db = a.space.distributions(), b.space.distributions()
        for p in a.params:
            if p in da and p in db and da[p] != db[p]:
                raise ResultsError(
                    f"--check {b.path}: not a study of the same space as {a.path} "
                    f"({p} differs: {db[p]} against {da[p]})"
                )


def check(res: Results, df: pd.DataFrame, params: list[str], other: Results, odf: pd.DataFrame) -> dict:
    """The boundary (tree) and the one-parameter edge fitted on ``df``, applied to ``odf``'s finished trials."""
    fin = finished(odf)
    truth = event(fin).astype(bool)
    model = best_boundary(res, df, params)
    usable = model is not None and (not isinstance(model, Boundary) or model.tree is not None)
    guess = model.predict(fin) if usable else np.zeros(len(fin), bool)
    right = guess == truth
    outcome = fin["outcome"].fillna("unknown").to_numpy(dtype=object)
    per = {}
    for k in [OK, *FAILURES]:
        m = outcome == k
        if m.any():
            per[k] = {"trials": int(m.sum()), "correct": int(right[m].sum()), "accuracy": float(right[m].mean())}
    out = {
        "study": other.name,
        "path": str(other.path),
        "trials": int(len(fin)),
        "correct": int(right.sum()),
        "accuracy": float(right.mean()) if len(fin) else None,
        "kinds": per,
        "edge": None,
    }
    edge = primary_edge(res, df, _numeric(res, params))
    if edge is not None and edge.param in fin:
        e_right = edge.predict(fin[edge.param]) == truth
        out["edge"] = {"rule": edge.text, "correct": int(e_right.sum()), "accuracy": float(e_right.mean())}
    return out


def check_lines(c: dict, label: str) -> list[str]:
    if not c["trials"]:
        return [f"Check on {label}: no finished trial there to classify."]
    kinds = ", ".join(f"{k} {v['correct']} of {v['trials']}" for k, v in c["kinds"].items())
    lines = [
        f"Check on {label}: the boundary fitted here classifies {c['correct']} of {c['trials']} trials "
        f"correctly ({_pct(c['correct'], c['trials'])}); by outcome: {kinds}."
    ]
    if c["edge"] is not None:
        e = c["edge"]
        lines.append(
            f"  the one-parameter edge {e['rule']} alone: {e['correct']} of {c['trials']} "
            f"({_pct(e['correct'], c['trials'])})"
        )
    return lines


# ---------------------------------------------------------------- the whole analysis as data


def analysis(res: Results, df: pd.DataFrame, params: list[str], n_bins: int) -> dict:
    """Everything the text report says about one study, as JSON-ready data."""
    fin = finished(df)
    numeric = _numeric(res, params)
    edge = primary_edge(res, df, numeric)
    n, d = len(fin), int(event(fin).sum())
    rules, about = [], None
    if MIN_CLASS <= d <= n - MIN_CLASS:
        found, about = tree_rules(res, df, params)
        rules = [{"rule": r.words, "trials": r.trials, "failed": r.failed} for r in found]
    tables = {}
    for p in params:
        tables[p] = [r.as_dict() for r in bin_rows(res, df, make_binning(p, [res], n_bins))]
    chance = pd.to_numeric(fin["chance"], errors="coerce").dropna() if "chance" in fin else pd.Series(dtype=float)
    return {
        "study": res.name,
        "path": str(res.path),
        "metric": res.metric,
        "trials": int(len(df)),
        "finished": n,
        "ok": n - d,
        "failed": d,
        "kinds": kind_counts(fin),
        "chance": float(chance.median()) if len(chance) else None,
        "tables": tables,
        "boundary": about,  # which model: the decision tree, or an edge per category
        "rules": rules,
        "edge": None
        if edge is None
        else {"param": edge.param, "value": edge.threshold, "side": edge.side, "text": edge.text, **edge.as_dict()},
        "kind_edges": {k: (None if e is None else e.as_dict()) for k, e in kind_edges(res, df, params).items()},
        "best_runs": best_vs_edge(res, df, params, edge, n_bins),
    }


# ---------------------------------------------------------------- the command


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument(
        "--params",
        default=None,
        metavar="P1,P2",
        help="parameters to analyse, comma-separated, e.g. lr,alpha,batch_size,normalizer; 'hidden' means "
        "every layer width (default: every searched parameter)",
    )
    p.add_argument(
        "--bins",
        type=whole("--bins", 2, 50),
        default=5,
        metavar="N",
        help="bins per numeric parameter: log-spaced for log-scaled ones, equal width for the others; "
        "an int with at most N values gets one row per value (default: 5)",
    )
    p.add_argument(
        "--pair",
        default=None,
        metavar="A,B",
        help="also print a 2-D table of failure rates for two parameters, e.g. lr,alpha (default: none)",
    )
    p.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="OTHER_DIR",
        help="a second results directory: print the tables side by side, e.g. min_max against z_score (default: none)",
    )
    p.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="OTHER_DIR",
        help="a study of the same space (another seed): classify its trials with the boundary fitted "
        "on RESULTS_DIR and say how many it gets right, overall and per outcome (default: none)",
    )
    p.add_argument(
        "--where",
        default=None,
        metavar="QUERY",
        help="analyse only the trials matching a pandas query, e.g. \"optimizer == 'sgd'\" (default: all trials)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text for people, or json: the whole analysis for programs (default: text)",
    )


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _load(path: Path, query: str | None) -> tuple[Results, pd.DataFrame]:
    res = open_results(path)
    df = where(res, query) if query else res.trials
    return res, df


def _select(studies: list[Results], args) -> list[str]:
    union = list(dict.fromkeys(p for r in studies for p in r.params))
    if args.params is None:
        return union
    asked = _split(args.params)
    if not asked:
        raise ResultsError(f"--params: no parameter given in {args.params!r}")
    if len(studies) == 1:
        return studies[0].check_params(asked)
    out = []
    for name in asked:
        owners = [
            r
            for r in studies
            if name in r.params or (name == "hidden" and any(p.startswith("hidden_") for p in r.params))
        ]
        if not owners:
            studies[0].check_params([name])  # raises the did-you-mean error
        out += [q for q in owners[0].check_params([name]) if q not in out]
    return out


def _pair(studies: list[Results], text: str) -> tuple[str, str]:
    names = _split(text)
    if len(names) != 2 or names[0] == names[1]:
        raise ResultsError(f"--pair takes two different parameters like lr,alpha, got {text!r}")
    for r in studies:
        got = r.check_params(names, "--pair")
        if len(got) != 2:
            raise ResultsError(f"--pair takes two parameters (not hidden, which is several), got {text!r}")
    return names[0], names[1]


def _finished_or_error(res: Results, df: pd.DataFrame) -> None:
    if finished(df).empty:
        what = "match --where" if len(df) != len(res.trials) else "have finished"
        raise ResultsError(f"{res.path}: no trials {what} yet ({res.counts()})")


def main(args) -> int:
    res, df = _load(args.results_dir, args.where)
    studies, frames = [res], [df]
    if args.compare is not None:
        other, odf = _load(args.compare, args.where)
        studies.append(other)
        frames.append(odf)
        if other.metric != res.metric:
            raise ResultsError(
                f"--compare: {res.path} is scored on {res.metric}, {other.path} on {other.metric}; "
                f"their metrics cannot share a table"
            )
    for r, f in zip(studies, frames):
        _finished_or_error(r, f)
    checked = None
    if getattr(args, "check", None) is not None:
        checked = _load(args.check, args.where)
        same_space(res, checked[0])
        _finished_or_error(*checked)
    params = _select(studies, args)
    pair = _pair(studies, args.pair) if args.pair else None
    if getattr(args, "format", "text") == "json":
        data = analysis(res, df, params, args.bins)
        if len(studies) > 1:
            data["compare"] = analysis(studies[1], frames[1], [p for p in params if p in studies[1].params], args.bins)
        if checked is not None:
            data["check"] = check(res, df, params, *checked)
        print(json.dumps(data, indent=2, default=_jsonable))
        return 0
    lines = _report(studies, frames, params, pair, args)
    if checked is not None:
        lines += ["", *check_lines(check(res, df, params, *checked), str(checked[0].path))]
    print("\n".join(lines))
    return 0


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return _finite(float(v))
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return str(v)


def report_lines(
    res: Results, *, params: list[str] | None = None, bins: int = 5, pair: tuple[str, str] | None = None
) -> list[str]:
    """What ``regions RESULTS_DIR`` prints, as lines (``hpsearch.Study.regions`` shows them)."""
    import argparse

    _finished_or_error(res, res.trials)
    args = argparse.Namespace(params=",".join(params) if params else None, bins=bins, where=None, pair=None)
    return _report([res], [res.trials], _select([res], args), pair, args)


def _labels(studies: list[Results]) -> list[str]:
    names = [r.name for r in studies]
    if len(set(names)) < len(names):
        names = [str(r.path) for r in studies]
    return names


def _report(studies, frames, params, pair, args) -> list[str]:
    lines = []
    labels = _labels(studies)
    for r, df, label in zip(studies, frames, labels):
        fin = finished(df)
        sel = f" · where {args.where}: {len(df)} of {len(r.trials)} trials" if args.where else ""
        lines.append(
            f"study {label} · {r.counts()} · metric {r.metric} ({'higher' if r.maximize else 'lower'} is better){sel}"
        )
        if len(fin) != len(df):
            lines.append(f"  rates count the {len(fin)} finished trials (completed, failed or pruned)")
        chance = pd.to_numeric(fin["chance"], errors="coerce").dropna() if "chance" in fin else ()
        if len(chance):
            lines.append(f"  chance level (majority-class rate of the validation split): {chance.median():.4f}")
        if r.guessed:
            lines.append("  (no meta.json: parameters and scales guessed from trials.csv)")
    kinds = shown_kinds(frames)
    for p in params:
        owners = [r for r in studies if p in r.params]
        binning = make_binning(p, owners, args.bins)
        lines.append("")
        if len(studies) == 1:
            lines += param_table(studies[0], frames[0], binning, kinds)
        else:
            lines += compare_table(studies, frames, labels, binning)
    if pair:
        for r, df, label in zip(studies, frames, labels):
            a, b = (make_binning(q, [s for s in studies if q in s.params], args.bins) for q in pair)
            lines.append("")
            if len(studies) > 1:
                lines.append(f"[{label}]")
            lines += pair_table(r, df, a, b)
    edges = []
    for r, df, label in zip(studies, frames, labels):
        lines.append("")
        if len(studies) > 1:
            lines.append(f"[{label}]")
        mine = [p for p in params if p in r.params]
        lines += boundary(r, df, mine, args.bins)
        edges.append(primary_edge(r, df, _numeric(r, mine)))
        lines += _sharpness(r, df)
    if len(studies) == 2:
        lines += _compare_edges(labels, edges)
    return lines


def _sharpness(res: Results, df: pd.DataFrame) -> list[str]:
    """How well lr·λ_max > limit separates the diverged trials, next to the fitted lr edge of divergence."""
    from hpsearch.results.sharpness import separation

    fin = finished(df)
    lr_edge = divergence_edge(res, df, "lr") if "lr" in res.params else None
    threshold = lr_edge.threshold if lr_edge is not None and lr_edge.side == ">" else None
    lines = separation(fin, diverged_mask(fin), threshold)
    return ["", *lines] if lines else []


def _compare_edges(labels: list[str], edges: list[Edge | None]) -> list[str]:
    a, b = edges
    if a is None and b is None:
        return []
    if a is None or b is None:
        has, hasnt = (labels[0], labels[1]) if a is not None else (labels[1], labels[0])
        e = a or b
        return ["", f"Compared: {has} has an edge ({e.text}); {hasnt} has none that the data show."]
    if a.param != b.param or a.side != b.side:
        return ["", f"Compared: {labels[0]} fails when {a.text}; {labels[1]} when {b.text}."]
    if a.threshold == b.threshold:
        return ["", f"Compared: the same edge in both ({a.text})."]
    lo, hi = sorted([(a.threshold, labels[0]), (b.threshold, labels[1])])
    factor = f"{hi[0] / lo[0]:.1f}× " if a.log and lo[0] > 0 else ""
    lower = lo[1] if a.side == ">" else hi[1]
    return [
        "",
        f"Compared: {labels[0]} fails when {a.text}, {labels[1]} when {b.text} — the edge of {lower} is "
        f"{factor}{'lower' if a.side == '>' else 'higher'}, so it fails sooner.",
    ]
