"""``hpsearch regions``: where in the space training diverges, and how close the best runs sit to it.

Diverged trials are results here, not failures: every table counts them. For each
parameter the trials are binned (log-spaced bins for log-scaled parameters, equal-width
bins for the others, one bin per value of an int with few values, one per category) and
each bin shows how many trials ran, how many diverged, and the best and median metric of
the completed ones. A shallow decision tree on the parameters (log10 of log-scaled ones)
turns the diverged / not-diverged labels into a few rules in plain words, each with the
counts that support it; a one-parameter split tested with Fisher's exact test gives the
"edge" that ``narrow`` also uses.

A trial counts when it finished: completed, diverged, or stopped by the pruner (it did not
diverge while it ran). Failed and running trials are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.errors import ResultsError
from hpsearch.results import diverged_mask, ranked
from hpsearch.results import Results, open_results, where

#: below these, a boundary is not worth fitting
MIN_TRIALS = 10
MIN_CLASS = 3
#: an edge is a one-parameter split whose diverging side is mostly diverged and unlikely to be chance
EDGE_RATE = 0.5
EDGE_P = 0.01
NOT_SAMPLED = "not sampled"
BEST_K = 10


# ---------------------------------------------------------------- numbers in words


def num(x: float, digits: int = 2) -> str:
    """0.005, 0.013, 0.33, 12, 1e-05: short enough for a table, distinct enough to read."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def _nums(values, digits: int = 2) -> list[str]:
    """Labels for edges, with more digits until neighbours differ."""
    for d in range(digits, 7):
        out = [num(v, d) for v in values]
        if len(set(out)) == len(out):
            return out
    return out


def _metric(res: Results, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4f}" if res.metric == "val_accuracy" else f"{v:.4g}"


def _pct(d: int, n: int) -> str:
    return f"{round(100 * d / n)} %" if n else "—"


# ---------------------------------------------------------------- bins


@dataclass
class Binning:
    """How one parameter is cut into rows: ``upper`` bounds (numeric) or ``categories``."""

    param: str
    kind: str  # "log bins", "bins", "values", "categories"
    labels: list[str]
    upper: np.ndarray | None = None  # value v goes to the first bin with v <= upper
    categories: list | None = None
    lows: list[float] = field(default_factory=list)  # numeric bins: lower edge of each, for the edge line

    def assign(self, values: pd.Series) -> np.ndarray:
        """Bin index per value; -1 where the parameter was not sampled (a conditional one)."""
        out = np.full(len(values), -1)
        present = values.notna().to_numpy()
        if self.categories is not None:
            index = {str(c): i for i, c in enumerate(self.categories)}
            out[present] = [index.get(str(v), -1) for v in values[present]]
            return out
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x)
        idx = np.searchsorted(self.upper, x[ok], side="left")
        out[ok] = np.minimum(idx, len(self.upper) - 1)
        return out


def make_binning(param: str, studies: list[Results], n_bins: int) -> Binning:
    """One binning of ``param`` shared by all ``studies`` (so --compare lines up row by row)."""
    first = next(r for r in studies if param in r.params)
    scale = first.scales.get(param, "categorical")
    if scale == "categorical":
        cats: list = []
        for r in studies:
            if param in r.trials:
                cats += [c for c in r.choices(param) if str(c) not in {str(k) for k in cats}]
        return Binning(param, "categories", [str(c) for c in cats], categories=cats)
    log = scale in ("log", "log_int")
    ranges = [r.searched_range(param) for r in studies if param in r.trials]
    ranges = [g for g in ranges if g is not None]
    lo, hi = min(g[0] for g in ranges), max(g[1] for g in ranges)
    if log and lo <= 0:
        log = False
    if scale in ("int", "log_int"):
        grid = _int_grid(param, studies, lo, hi)
        if len(grid) <= n_bins:
            upper = np.array(grid, dtype=float)
            return Binning(param, "values", [num(g) for g in grid], upper=upper, lows=list(upper))
        edges = np.geomspace(lo, hi, n_bins + 1) if log else np.linspace(lo, hi, n_bins + 1)
        groups = [[g for g in grid if (edges[i] < g <= edges[i + 1]) or (i == 0 and g == edges[0])]
                  for i in range(n_bins)]
        groups = [g for g in groups if g]
        labels = [num(g[0]) if len(g) == 1 else f"{num(g[0])} – {num(g[-1])}" for g in groups]
        return Binning(param, "log bins" if log else "bins", labels, upper=np.array([g[-1] for g in groups], float),
                       lows=[g[0] for g in groups])
    if lo == hi:
        return Binning(param, "values", [num(lo)], upper=np.array([hi], float), lows=[lo])
    edges = np.geomspace(lo, hi, n_bins + 1) if log else np.linspace(lo, hi, n_bins + 1)
    text = _nums(edges)
    labels = [f"{text[i]} – {text[i + 1]}" for i in range(n_bins)]
    return Binning(param, "log bins" if log else "bins", labels, upper=edges[1:], lows=list(edges[:-1]))


def _int_grid(param: str, studies: list[Results], lo: float, hi: float) -> list[int]:
    grid: set[int] = set()
    for r in studies:
        dist = r.space.distributions().get(param) if r.space is not None else None
        if dist is not None and hasattr(dist, "step") and dist.step and (dist.high - dist.low) / dist.step < 10_000:
            grid.update(range(int(dist.low), int(dist.high) + 1, int(dist.step)))
        elif param in r.trials:
            grid.update(int(v) for v in pd.to_numeric(r.trials[param], errors="coerce").dropna())
    return sorted(g for g in grid if lo <= g <= hi) or [int(lo)]


@dataclass
class BinRow:
    label: str
    trials: int
    diverged: int
    best: float | None
    median: float | None
    has_best: bool = False


def bin_rows(res: Results, df: pd.DataFrame, binning: Binning) -> list[BinRow]:
    """Per bin: finished trials, diverged ones, best and median metric of the completed ones."""
    fin = _finished(df)
    idx = binning.assign(fin[binning.param]) if binning.param in fin else np.full(len(fin), -1)
    div = diverged_mask(fin).to_numpy()
    values = fin["value"].to_numpy(dtype=float)
    best_number = _best_number(res, fin)
    numbers = fin["number"].to_numpy()
    rows = []
    for i, label in [*enumerate(binning.labels), (-1, NOT_SAMPLED)]:
        m = idx == i
        if i == -1 and not m.any():
            continue
        v = values[m & ~np.isnan(values)]
        best = (v.max() if res.maximize else v.min()) if len(v) else None
        rows.append(BinRow(label, int(m.sum()), int(div[m].sum()), best, float(np.median(v)) if len(v) else None,
                           best_number is not None and best_number in numbers[m]))
    return rows


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["state"].isin(["COMPLETE", "PRUNED"])]


def _best_number(res: Results, df: pd.DataFrame):
    done = df[df["value"].notna()]
    if done.empty:
        return None
    return int(done.loc[done["value"].idxmax() if res.maximize else done["value"].idxmin(), "number"])


# ---------------------------------------------------------------- tables


def _grid(rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to width; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _row_cells(res: Results, r: BinRow) -> list[str]:
    return [str(r.trials), str(r.diverged), _pct(r.diverged, r.trials), _metric(res, r.best), _metric(res, r.median)]


def param_table(res: Results, df: pd.DataFrame, binning: Binning) -> list[str]:
    rows = bin_rows(res, df, binning)
    lab = res.metric_label
    head = [f"Divergence by {binning.param} ({binning.kind})", "trials", "diverged", "rate", f"best {lab}",
            f"median {lab}", ""]
    body = [[f"  {r.label}", *_row_cells(res, r), "◀ best run" if r.has_best else ""] for r in rows]
    return _grid([head, *body])


def compare_table(studies: list[Results], frames: list[pd.DataFrame], labels: list[str], binning: Binning) -> list[str]:
    """The per-bin table of two (or more) studies side by side, rows lined up on one shared binning."""
    per = [bin_rows(res, df, binning) if binning.param in res.trials else [] for res, df in zip(studies, frames)]
    lab = studies[0].metric_label
    cols = ["trials", "div", "rate", f"best {lab}", "median", ""]
    head = [f"Divergence by {binning.param} ({binning.kind})"]
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
    fin = _finished(df)
    ia, ib = a.assign(fin[a.param]), b.assign(fin[b.param])
    div = diverged_mask(fin).to_numpy()
    head = [f"  {a.param} ↓  {b.param} →", *b.labels]
    body = []
    for i, label in enumerate(a.labels):
        cells = [f"  {label}"]
        for j in range(len(b.labels)):
            m = (ia == i) & (ib == j)
            n, d = int(m.sum()), int(div[m].sum())
            cells.append(f"{round(100 * d / n)}% ({d}/{n})" if n else "·")
        body.append(cells)
    title = (f"Divergence rate by {a.param} × {b.param}: rate (diverged/trials); "
             f"· = no trial ({int(((ia >= 0) & (ib >= 0)).sum())} trials with both)")
    return [title, *_grid([head, *body])]


# ---------------------------------------------------------------- features for the boundary


@dataclass
class Feature:
    param: str
    kind: str  # "log", "num", "int", "cat"
    category: str | None = None  # "cat": the column is 1 where param == category
    other: str | None = None  # "cat" with two categories: the other one


def design(res: Results, df: pd.DataFrame, params: list[str]) -> tuple[np.ndarray, list[Feature]]:
    """The matrix the tree sees: log10 of log-scaled parameters, others as they are, categories one-hot."""
    cols, feats = [], []
    for p in params:
        if p not in df:
            continue
        s = df[p]
        if res.is_numeric(p):
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            seen = x[~np.isnan(x)]
            if res.is_log(p) and len(seen) and (seen > 0).all():
                cols.append(np.log10(x))
                feats.append(Feature(p, "log"))
            else:
                cols.append(x)
                feats.append(Feature(p, "int" if res.scales.get(p) in ("int", "log_int") else "num"))
            continue
        labels = s.map(lambda v: NOT_SAMPLED if pd.isna(v) else str(v))
        cats = list(dict.fromkeys(labels))
        if len(cats) < 2:
            continue
        if len(cats) == 2:
            cols.append((labels == cats[1]).to_numpy(dtype=float))
            feats.append(Feature(p, "cat", cats[1], cats[0]))
        else:
            for c in cats:
                cols.append((labels == c).to_numpy(dtype=float))
                feats.append(Feature(p, "cat", c))
    if not cols:
        return np.empty((len(df), 0)), []
    return np.column_stack(cols), feats


def _value(f: Feature, t: float) -> float:
    return 10 ** t if f.kind == "log" else t


def _cut(f: Feature, t: float, x: np.ndarray) -> tuple[str, str]:
    """``(left, right)`` words for a split at ``t`` (left is x <= t)."""
    if f.kind == "int":
        below = x[x <= t]
        at = below.max() if len(below) else math.floor(t)
        return f"{f.param} <= {num(at)}", f"{f.param} > {num(at)}"
    v = num(_value(f, t))
    return f"{f.param} <= {v}", f"{f.param} > {v}"


# ---------------------------------------------------------------- the edge of one parameter


@dataclass
class Edge:
    """A one-parameter split: trials on ``side`` of ``threshold`` diverge far more often."""

    param: str
    side: str  # ">" (diverges above) or "<=" (diverges below)
    threshold: float  # in the parameter's own units
    n_side: int
    d_side: int
    n_other: int
    d_other: int
    p_value: float
    log: bool
    text: str  # "lr > 0.9"

    @property
    def rate(self) -> float:
        return self.d_side / self.n_side

    def words(self) -> str:
        """``lr > 0.9 (19 of 22 trials there diverged; 2 of 58 below)``."""
        other = "below" if self.side == ">" else "above"
        return (f"{self.text} ({self.d_side} of {self.n_side} trials there diverged; "
                f"{self.d_other} of {self.n_other} {other})")


def stump(x: np.ndarray, y: np.ndarray, f: Feature, min_leaf: int):
    """Best single split of ``y`` on ``x`` (a depth-1 tree): ``(t, left_mask)`` or ``None``."""
    from sklearn.tree import DecisionTreeClassifier

    ok = ~np.isnan(x)
    if ok.sum() < 2 * min_leaf or len(np.unique(x[ok])) < 2:
        return None
    tree = DecisionTreeClassifier(max_depth=1, min_samples_leaf=min_leaf, random_state=0)
    tree.fit(x[ok].reshape(-1, 1), y[ok])
    if tree.tree_.node_count < 3:
        return None
    return float(tree.tree_.threshold[0])


def divergence_edge(res: Results, df: pd.DataFrame, param: str, min_leaf: int = 3) -> Edge | None:
    """Where ``param`` alone separates diverged trials: a split whose diverging side is mostly
    diverged (>= 50 %), holds at least 3 diverged trials, and passes Fisher's exact test (p < 0.01)."""
    from scipy.stats import fisher_exact

    if not res.is_numeric(param) or param not in df:
        return None
    fin = _finished(df)
    X, feats = design(res, fin, [param])
    if not feats:
        return None
    f, x = feats[0], X[:, 0]
    y = diverged_mask(fin).to_numpy().astype(int)
    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    t = stump(x, y, f, min_leaf)
    if t is None:
        return None
    left = x <= t
    nl, dl, nr, dr = int(left.sum()), int(y[left].sum()), int((~left).sum()), int(y[~left].sum())
    above = dr / nr >= dl / nl
    n_side, d_side, n_other, d_other = (nr, dr, nl, dl) if above else (nl, dl, nr, dr)
    if d_side < MIN_CLASS or d_side / n_side < EDGE_RATE or d_side / n_side <= d_other / max(n_other, 1):
        return None
    p = fisher_exact([[d_side, n_side - d_side], [d_other, n_other - d_other]], alternative="greater")[1]
    if p >= EDGE_P:
        return None
    words = _cut(f, t, x)
    if f.kind == "int":
        below = x[x <= t]
        threshold = float(below.max()) if len(below) else float(math.floor(t))
    else:
        threshold = _value(f, t)
    return Edge(param, ">" if above else "<=", threshold, n_side, d_side, n_other, d_other, float(p),
                f.kind == "log", words[1] if above else words[0])


def primary_edge(res: Results, df: pd.DataFrame, params: list[str]) -> Edge | None:
    """The most convincing one-parameter edge among ``params`` (smallest p-value)."""
    edges = [e for e in (divergence_edge(res, df, p) for p in params) if e is not None]
    return min(edges, key=lambda e: (e.p_value, -e.d_side)) if edges else None


# ---------------------------------------------------------------- the boundary in words


@dataclass
class Rule:
    words: str
    trials: int
    diverged: int


def tree_rules(res: Results, df: pd.DataFrame, params: list[str]) -> tuple[list[Rule], str]:
    """A shallow decision tree's leaves as rules, sibling leaves that agree merged; and its description."""
    from sklearn.tree import DecisionTreeClassifier

    fin = _finished(df)
    X, feats = design(res, fin, params)
    y = diverged_mask(fin).to_numpy().astype(int)
    n = len(y)
    depth = 2 if n < 150 else 3
    min_leaf = max(3, round(0.05 * n))
    names = ", ".join(dict.fromkeys(("log " if f.kind == "log" else "") + f.param for f in feats))
    about = f"decision tree, depth {depth}, leaves of at least {min_leaf} trials, on {names}"
    if not feats:
        return [], about
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=min_leaf, random_state=0).fit(X, y)
    path = tree.decision_path(X).tocsc()
    size = np.asarray(path.sum(axis=0)).ravel()
    hits = np.asarray(path[y == 1].sum(axis=0)).ravel()
    t = tree.tree_

    def verdict(node) -> int:
        """0: rarely diverges (<= 25 %), 2: mostly diverges (>= 75 %), 1: in between."""
        rate = hits[node] / size[node]
        return 0 if rate <= 0.25 else 2 if rate >= 0.75 else 1

    def walk(node, conds: list) -> list[Rule]:
        """The rules of a subtree; a split whose two sides end in the same verdict is read as one rule."""
        left, right = t.children_left[node], t.children_right[node]
        here = [Rule(_conditions(conds, feats), int(size[node]), int(hits[node]))]
        if left == -1:
            return here
        f = feats[t.feature[node]]
        x = X[:, t.feature[node]]
        missing_left = bool(t.missing_go_to_left[node]) and np.isnan(x).any()
        a = walk(left, [*conds, (f, "<=", t.threshold[node], x, missing_left)])
        b = walk(right, [*conds, (f, ">", t.threshold[node], x, not missing_left and np.isnan(x).any())])
        if len(a) == 1 and len(b) == 1 and verdict(left) == verdict(right):
            return here  # both sides tell the same story (rarely, mostly or sometimes diverges): one rule
        return a + b

    rules = walk(0, [])
    rules.sort(key=lambda r: (-r.diverged / r.trials, -r.trials))
    return rules, about


def _conditions(conds: list, feats: list[Feature]) -> str:
    """Path conditions → words, one per parameter: ``0.1 < lr <= 0.9 and normalizer = z_score``."""
    if not conds:
        return "every trial"
    by_param: dict[str, dict] = {}
    for f, op, t, x, missing in conds:
        c = by_param.setdefault(f.param, {"low": None, "high": None, "cats": None, "feat": f, "x": x,
                                          "missing": True, "any_missing": False})
        if f.kind == "cat":
            everything = [g.category for g in feats if g.param == f.param] + ([f.other] if f.other else [])
            cats = c["cats"] if c["cats"] is not None else list(dict.fromkeys(everything))
            keep = (lambda k: k != f.category) if op == "<=" else (lambda k: k == f.category)
            c["cats"] = [k for k in cats if keep(k)]
            continue
        c["any_missing"] = c["any_missing"] or bool(np.isnan(x).any())
        c["missing"] = c["missing"] and missing
        if op == "<=":
            c["high"] = t if c["high"] is None else min(c["high"], t)
        else:
            c["low"] = t if c["low"] is None else max(c["low"], t)
    parts = []
    for p, c in by_param.items():
        f = c["feat"]
        if c["cats"] is not None:
            cats = c["cats"]
            parts.append(f"{p} = {cats[0]}" if len(cats) == 1 else f"{p} in {{{', '.join(cats)}}}")
            continue
        lo_words = _cut(f, c["low"], c["x"])[1] if c["low"] is not None else None
        hi_words = _cut(f, c["high"], c["x"])[0] if c["high"] is not None else None
        if lo_words and hi_words:
            text = f"{lo_words.split(' > ')[1]} < {p} <= {hi_words.split(' <= ')[1]}"
        else:
            text = lo_words or hi_words
        if c["any_missing"] and c["missing"]:
            text = f"({text} or {p} {NOT_SAMPLED})"
        parts.append(text)
    return " and ".join(parts)


def boundary(res: Results, df: pd.DataFrame, params: list[str], n_bins: int) -> list[str]:
    """The boundary section: rules with counts, the edge in one sentence, per-category thresholds,
    and how close the best runs sit to the edge; honest words when the data are too few."""
    fin = _finished(df)
    n, d = len(fin), int(diverged_mask(fin).sum())
    lines: list[str] = []
    if n < MIN_TRIALS and 0 < d < n:
        lines.append(f"Boundary: only {n} finished trials ({d} diverged) — too few to say where divergence starts; "
                     f"run more trials.")
        lines += _few_diverged(res, fin, params)
        return lines + edge_lines(res, df, params, None, n_bins)
    if d == 0:
        lines.append(f"Boundary: no trial diverged (0 of {n} finished) — no divergence inside the space searched.")
        return lines + edge_lines(res, df, params, None, n_bins)
    if d == n:
        lines.append(f"Boundary: every finished trial diverged ({d} of {n}) — the whole space searched is past the "
                     f"edge; lower the learning rate range.")
        return lines
    if d < MIN_CLASS or n - d < MIN_CLASS:
        few, many = ("diverged", "did not diverge") if d < MIN_CLASS else ("did not diverge", "diverged")
        count = d if d < MIN_CLASS else n - d
        lines.append(f"Boundary: only {count} of {n} finished trials {few} — too few to fit a boundary.")
        lines += _few_diverged(res, fin, params)
        return lines + edge_lines(res, df, params, primary_edge(res, df, _numeric(res, params)), n_bins)
    rules, about = tree_rules(res, df, params)
    lines.append(f"Boundary ({about}; {n} trials, {d} diverged):")
    if len(rules) <= 1:
        lines.append("  no parameter separates the diverged trials from the others (the tree found no useful split)")
    else:
        width = max(len(r.words) for r in rules)
        for r in rules:
            lines.append(f"  {r.words.ljust(width)}  → diverged {r.diverged} of {r.trials} "
                         f"({_pct(r.diverged, r.trials)})")
        if max(r.diverged / r.trials for r in rules) < EDGE_RATE:
            lines.append("  no region where most trials diverge: divergence looks scattered across the space")
    if n < 30 or d < 8:
        lines.append(f"  (few trials: {n} finished, {d} diverged — read these rules as hints)")
    edge = primary_edge(res, df, _numeric(res, params))
    if edge is not None:
        lines.append(f"In short: training diverges when {edge.words()}.")
        lines += category_thresholds(res, df, params, edge)
    else:
        lines.append("In short: no single parameter has a clear edge (a split where most trials diverge, "
                     f"with at least {MIN_CLASS} of them, p < {EDGE_P}).")
    return lines + edge_lines(res, df, params, edge, n_bins)


def _numeric(res: Results, params: list[str]) -> list[str]:
    return [p for p in params if res.is_numeric(p)]


def _few_diverged(res: Results, fin: pd.DataFrame, params: list[str]) -> list[str]:
    div = fin[diverged_mask(fin)].sort_values("number")
    if div.empty or len(div) > 5:
        return []
    out = []
    for _, row in div.iterrows():
        bits = [f"{p} {_fmt(row[p])}" for p in params if p in row and not pd.isna(row[p])]
        out.append(f"  diverged: trial {int(row['number'])} ({', '.join(bits)}) — {row['prune_reason']}")
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
            e = divergence_edge(res, sub, edge.param, min_leaf=2)
            fin = _finished(sub)
            dn = int(diverged_mask(fin).sum())
            if e is not None and e.side == edge.side:
                found[str(cat)] = e
            elif len(fin):
                notes.append(f"{c} = {cat}: {dn} of {len(fin)} diverged, no clear edge")
        if len(found) < 1 or (len(found) == 1 and not notes):
            continue
        for cat, e in found.items():
            out.append(f"  with {c} = {cat}: diverges when {e.words()}")
        out += [f"  with {note}" for note in notes]
        if len(found) >= 2:
            (lo_cat, lo), (hi_cat, hi) = (min(found.items(), key=lambda kv: kv[1].threshold),
                                          max(found.items(), key=lambda kv: kv[1].threshold))
            ratio = hi.threshold / lo.threshold if lo.threshold > 0 and edge.log else None
            close = ratio < 1.5 if ratio is not None else abs(hi.threshold - lo.threshold) <= 0.1 * abs(hi.threshold)
            if close:
                out.append(f"  → about the same edge whatever the {c}")
            else:
                factor = f" ({ratio:.1f}× lower)" if ratio else ""
                out.append(f"  → with {lo_cat} the threshold is lower: {edge.param} {num(lo.threshold)} against "
                           f"{num(hi.threshold)} with {hi_cat}{factor}")
    return out


def edge_lines(res: Results, df: pd.DataFrame, params: list[str], edge: Edge | None, n_bins: int) -> list[str]:
    """How close the best runs sit to the edge (UX: "The best runs sit just below the edge ...")."""
    done = ranked(df[df["value"].notna()], res.metric)
    if done.empty:
        return ["No completed trial, so no best runs to place against the edge."]
    top = done.head(BEST_K)
    k = len(top)
    best = top.iloc[0]
    if edge is None:
        p = "lr" if "lr" in params and res.is_numeric("lr") else next(iter(_numeric(res, params)), None)
        if p is None:
            return []
        vals = pd.to_numeric(top[p], errors="coerce").dropna()
        rng = res.searched_range(p)
        if vals.empty or rng is None:
            return []
        lead = ("No edge to be near (nothing diverged)" if not diverged_mask(_finished(df)).any()
                else "No clear edge to measure against")
        text = (f"{lead}: the best {k} have {p} {num(vals.min())} – {num(vals.max())} "
                f"(searched {num(rng[0])} – {num(rng[1])}).")
        width = _bin_width(rng, res.is_log(p), n_bins)
        top_bin = rng[1] / width if res.is_log(p) else rng[1] - width
        if (vals >= top_bin).sum() >= k / 2:
            text += f" Most sit in the top bin of {p}: the edge may lie beyond the range searched."
        return [text]
    p = edge.param
    rng = res.searched_range(p) or (edge.threshold, edge.threshold)
    width = _bin_width(rng, edge.log, n_bins)
    t = edge.threshold
    if edge.side == ">":
        lo, hi = (t / width, t) if edge.log else (t - width, t)
        where_word = "below"
    else:
        lo, hi = (t, t * width) if edge.log else (t, t + width)
        where_word = "above"
    vals = pd.to_numeric(top[p], errors="coerce")
    near = int(((vals >= lo) & (vals <= hi)).sum())
    past = int(((vals > t) if edge.side == ">" else (vals <= t)).sum())
    bv = float(best[p]) if not pd.isna(best[p]) else None
    where_best = ""
    if bv is not None:
        gap = (f"{max(t / bv, bv / t):.1f}× {where_word} the edge" if edge.log and bv > 0
               else f"{num(abs(t - bv))} {where_word} the edge")
        if (bv > t) == (edge.side == ">"):
            gap = "past the edge, where most trials diverge"
        where_best = f"; the best, trial {int(best['number'])}, has {p} {num(bv)} ({gap})"
    span = f"{p} {num(lo)} – {num(hi)}"
    if near + past < math.ceil(k / 2):
        return [f"The best runs are well clear of the edge: only {near + past} of the best {k} have {p} within one "
                f"bin of it or past it ({span}, edge at {p} {num(t)}){where_best}."]
    if not past:
        return [f"The best runs sit just {where_word} the edge: {near} of the best {k} have {span} (one bin "
                f"{where_word} the edge at {p} {num(t)}){where_best}."]
    return [f"The best runs sit close to the edge at {p} {num(t)}: {near} of the best {k} within one bin {where_word} "
            f"it ({span}) and {past} past it, where most trials diverge{where_best}."]


def _bin_width(rng, log: bool, n_bins: int) -> float:
    lo, hi = rng
    if log and lo > 0 and hi > lo:
        return (hi / lo) ** (1 / n_bins)
    return (hi - lo) / n_bins if hi > lo else 0.0


# ---------------------------------------------------------------- the command


def add_arguments(p) -> None:
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a study's results directory (results/<name>)")
    p.add_argument("--params", default=None, metavar="P1,P2",
                   help="parameters to analyse, comma-separated, e.g. lr,alpha,batch_size,normalizer; 'hidden' means "
                        "every layer width (default: every searched parameter)")
    p.add_argument("--bins", type=_bins, default=5, metavar="N",
                   help="bins per numeric parameter: log-spaced for log-scaled ones, equal width for the others; "
                        "an int with at most N values gets one row per value (default: 5)")
    p.add_argument("--pair", default=None, metavar="A,B",
                   help="also print a 2-D table of divergence rates for two parameters, e.g. lr,alpha (default: none)")
    p.add_argument("--compare", type=Path, default=None, metavar="OTHER_DIR",
                   help="a second results directory: print the tables side by side, e.g. min_max against z_score "
                        "(default: none)")
    p.add_argument("--where", default=None, metavar="QUERY",
                   help="analyse only the trials matching a pandas query, e.g. \"optimizer == 'sgd'\" "
                        "(default: all trials)")


def _bins(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bins must be a whole number, got {text!r}") from None
    if not 2 <= value <= 50:
        raise argparse.ArgumentTypeError(f"--bins must be between 2 and 50, got {value}")
    return value


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
        owners = [r for r in studies if name in r.params or (name == "hidden" and any(
            p.startswith("hidden_") for p in r.params))]
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
    if _finished(df).empty:
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
            raise ResultsError(f"--compare: {res.path} is scored on {res.metric}, {other.path} on {other.metric}; "
                               f"their metrics cannot share a table")
    for r, f in zip(studies, frames):
        _finished_or_error(r, f)
    params = _select(studies, args)
    pair = _pair(studies, args.pair) if args.pair else None
    print("\n".join(_report(studies, frames, params, pair, args)))
    return 0


def report_lines(res: Results, *, params: list[str] | None = None, bins: int = 5,
                 pair: tuple[str, str] | None = None) -> list[str]:
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
        fin = _finished(df)
        sel = f" · where {args.where}: {len(df)} of {len(r.trials)} trials" if args.where else ""
        lines.append(f"study {label} · {r.counts()} · metric {r.metric} "
                     f"({'higher' if r.maximize else 'lower'} is better){sel}")
        if len(fin) != len(df):
            lines.append(f"  rates count the {len(fin)} finished trials (completed, diverged or pruned)")
        if r.guessed:
            lines.append("  (no meta.json: parameters and scales guessed from trials.csv)")
    for p in params:
        owners = [r for r in studies if p in r.params]
        binning = make_binning(p, owners, args.bins)
        lines.append("")
        if len(studies) == 1:
            lines += param_table(studies[0], frames[0], binning)
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
    """How well lr·λ_max > limit separates the diverged trials, next to the fitted lr edge."""
    from hpsearch.results.sharpness import separation

    fin = _finished(df)
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
        return ["", f"Compared: {labels[0]} diverges when {a.text}; {labels[1]} when {b.text}."]
    if a.threshold == b.threshold:
        return ["", f"Compared: the same edge in both ({a.text})."]
    lo, hi = sorted([(a.threshold, labels[0]), (b.threshold, labels[1])])
    factor = f"{hi[0] / lo[0]:.1f}× " if a.log and lo[0] > 0 else ""
    lower = lo[1] if a.side == ">" else hi[1]
    return ["", f"Compared: {labels[0]} diverges when {a.text}, {labels[1]} when {b.text} — the edge of {lower} is "
                f"{factor}{'lower' if a.side == '>' else 'higher'}, so it blows up sooner."]
