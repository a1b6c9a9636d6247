"""The boundary of failure: one-parameter edges and a shallow decision tree, fitted on a study
and applicable to another one.

The labels are the trials' outcomes: "failed" is any failure kind (``FAILURES``), and
every edge or tree can be fitted on one kind, or on the divergences only. The tree sees
log10 of log-scaled parameters, the others as they are, and categories one-hot; its
leaves become rules in plain words with the counts behind them. An *edge* is a
one-parameter split whose failing side mostly fails and that Fisher's exact test says
is unlikely to be chance: the "training fails when lr > X" of ``regions`` and the cap
``narrow`` keeps to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpsearch.analysis._binning import NOT_SAMPLED, num
from hpsearch.results import Results
from hpsearch.vocabulary import DIVERGED_REASONS, FAILURES

#: below these, a boundary is not worth fitting
MIN_TRIALS = 10
MIN_CLASS = 3
#: an edge is a one-parameter split whose failing side is mostly failed and unlikely to be chance
EDGE_RATE = 0.5
EDGE_P = 0.01


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """Trials that ran to a verdict: completed, or pruned (failed, or stopped by the pruner)."""
    return df[df["state"].isin(["COMPLETE", "PRUNED"])]


def event(df: pd.DataFrame, kinds=FAILURES) -> np.ndarray:
    """1 where a trial's outcome is one of ``kinds``, else 0."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    return df["outcome"].isin(kinds).to_numpy().astype(int)


def what(kinds) -> str:
    """The verb of an event: ``failed``, ``diverged``, or the kind itself (``dead``)."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if set(kinds) == set(FAILURES):
        return "failed"
    if set(kinds) == set(DIVERGED_REASONS):
        return "diverged"
    return "/".join(kinds)


# ---------------------------------------------------------------- features


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
    return 10**t if f.kind == "log" else t


def _cut(f: Feature, t: float, x: np.ndarray) -> tuple[str, str]:
    """``(left, right)`` words for a split at ``t`` (left is x <= t)."""
    if f.kind == "int":
        below = x[x <= t]
        at = below.max() if len(below) else math.floor(t)
        return f"{f.param} <= {num(at)}", f"{f.param} > {num(at)}"
    v = num(_value(f, t))
    return f"{f.param} <= {v}", f"{f.param} > {v}"


def design_like(df: pd.DataFrame, feats: list[Feature]) -> np.ndarray:
    """The matrix of another study's trials in the columns ``feats`` (fitted elsewhere) name;
    a parameter it lacks is missing (NaN), a category it never saw is 0."""
    cols = []
    for f in feats:
        s = df[f.param] if f.param in df else pd.Series(np.nan, index=df.index)
        if f.kind == "cat":
            labels = s.map(lambda v: NOT_SAMPLED if pd.isna(v) else str(v))
            cols.append((labels == f.category).to_numpy(dtype=float))
            continue
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        if f.kind == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)
        cols.append(x)
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


# ---------------------------------------------------------------- the edge of one parameter


@dataclass
class Edge:
    """A one-parameter split: trials on ``side`` of ``threshold`` fail (``what``) far more often."""

    param: str
    side: str  # ">" (fails above) or "<=" (fails below)
    threshold: float  # in the parameter's own units
    n_side: int
    d_side: int
    n_other: int
    d_other: int
    p_value: float
    log: bool
    text: str  # "lr > 0.9"
    what: str = "failed"  # "failed" (any kind), "diverged", or one kind

    @property
    def rate(self) -> float:
        return self.d_side / self.n_side

    def words(self) -> str:
        """``lr > 0.9 (19 of 22 trials there failed; 2 of 58 below)``."""
        other = "below" if self.side == ">" else "above"
        return (
            f"{self.text} ({self.d_side} of {self.n_side} trials there {self.what}; "
            f"{self.d_other} of {self.n_other} {other})"
        )

    def predict(self, values: pd.Series) -> np.ndarray:
        """True where a value lies on the failing side (a missing value: not)."""
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            return (x > self.threshold) if self.side == ">" else (x <= self.threshold)

    def as_dict(self) -> dict:
        return {
            "param": self.param,
            "side": self.side,
            "value": self.threshold,
            "what": self.what,
            "trials_past": self.n_side,
            "failed_past": self.d_side,
            "trials_within": self.n_other,
            "failed_within": self.d_other,
            "p_value": self.p_value,
        }


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


def failure_edge(res: Results, df: pd.DataFrame, param: str, min_leaf: int = 3, kinds=FAILURES) -> Edge | None:
    """Where ``param`` alone separates failed trials (outcome in ``kinds``): a split whose failing
    side mostly fails (>= 50 %), holds at least 3 failures, and passes Fisher's exact test (p < 0.01)."""
    from scipy.stats import fisher_exact

    if not res.is_numeric(param) or param not in df:
        return None
    fin = finished(df)
    X, feats = design(res, fin, [param])
    if not feats:
        return None
    f, x = feats[0], X[:, 0]
    y = event(fin, kinds)
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
    return Edge(
        param,
        ">" if above else "<=",
        threshold,
        n_side,
        d_side,
        n_other,
        d_other,
        float(p),
        f.kind == "log",
        words[1] if above else words[0],
        what(kinds),
    )


def divergence_edge(res: Results, df: pd.DataFrame, param: str, min_leaf: int = 3) -> Edge | None:
    """:func:`failure_edge` of the divergences (overflow, nan) alone."""
    return failure_edge(res, df, param, min_leaf, DIVERGED_REASONS)


def primary_edge(res: Results, df: pd.DataFrame, params: list[str], kinds=FAILURES) -> Edge | None:
    """The most convincing one-parameter edge among ``params`` (smallest p-value)."""
    edges = [e for e in (failure_edge(res, df, p, kinds=kinds) for p in params) if e is not None]
    return min(edges, key=lambda e: (e.p_value, -e.d_side)) if edges else None


# ---------------------------------------------------------------- the boundary in words


@dataclass
class Rule:
    words: str
    trials: int
    failed: int

    @property
    def diverged(self) -> int:  # the name before failure kinds (hpsearch.Study.regions reads it)
        return self.failed


@dataclass
class Boundary:
    """A decision tree fitted on one study's trials: ``predict`` classifies another study's."""

    tree: object  # sklearn DecisionTreeClassifier
    feats: list[Feature]
    kinds: tuple
    about: str

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """True where the tree says a trial fails."""
        if not self.feats:
            return np.zeros(len(df), bool)
        return self.tree.predict(design_like(df, self.feats)).astype(bool)


@dataclass
class CategoryEdges:
    """One numeric parameter's edge for each value of one categorical parameter (``lr`` per ``optimizer``).

    What the theory expects: a stability limit that moves with the optimizer or the
    normalizer. A depth-2 tree cannot give three optimizers three thresholds; this can.
    """

    cat: str
    feat: Feature  # the numeric parameter (log10 where log-scaled)
    cuts: dict  # category → (threshold in feature units or None, verdict at or below it, verdict above it)
    default: bool  # the verdict for a category this study never saw: the majority
    kinds: tuple
    about: str = ""

    @classmethod
    def fit(cls, res: Results, fin: pd.DataFrame, cat: str, param: str, kinds=FAILURES) -> CategoryEdges | None:
        X, feats = design(res, fin, [param])
        if not feats or cat not in fin:
            return None
        x, y = X[:, 0], event(fin, kinds)
        labels = fin[cat].map(lambda v: NOT_SAMPLED if pd.isna(v) else str(v)).to_numpy(dtype=object)
        cuts = {}
        for k in dict.fromkeys(labels):
            m = labels == k
            xk, yk = x[m], y[m]
            majority = bool(yk.mean() >= 0.5)
            t = stump(xk, yk, feats[0], 2) if 0 < yk.sum() < len(yk) else None
            if t is None:
                cuts[k] = (None, majority, majority)
                continue
            below = xk <= t
            cuts[k] = (t, bool(yk[below].mean() >= 0.5), bool(yk[~below].mean() >= 0.5))
        return cls(cat, feats[0], cuts, bool(y.mean() >= 0.5), tuple(kinds))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """True where a trial fails by its category's edge."""
        x = design_like(df, [self.feat])[:, 0]
        s = df[self.cat] if self.cat in df else pd.Series(np.nan, index=df.index)
        labels = s.map(lambda v: NOT_SAMPLED if pd.isna(v) else str(v)).to_numpy(dtype=object)
        out = np.full(len(df), self.default)
        for k, (t, low, high) in self.cuts.items():
            m = labels == k
            if t is None:
                out[m] = low
            else:
                with np.errstate(invalid="ignore"):
                    out[m] = np.where(x[m] <= t, low, high)
        return out

    def rules(self, fin: pd.DataFrame) -> list[Rule]:
        """Per category, each side of its edge with the trials behind it."""
        y = event(fin, self.kinds)
        x = design_like(fin, [self.feat])[:, 0]
        labels = fin[self.cat].map(lambda v: NOT_SAMPLED if pd.isna(v) else str(v)).to_numpy(dtype=object)
        out = []
        for k, (t, low, high) in self.cuts.items():
            m = labels == k
            if t is None or low == high:
                out.append(Rule(f"{self.cat} = {k}", int(m.sum()), int(y[m].sum())))
                continue
            left, right = _cut(self.feat, t, x[m])
            for words, side in ((left, x <= t), (right, x > t)):
                mm = m & side
                out.append(Rule(f"{self.cat} = {k} and {words}", int(mm.sum()), int(y[mm].sum())))
        out.sort(key=lambda r: (-r.failed / max(r.trials, 1), -r.trials))
        return out


def cv_accuracy(fit, fin: pd.DataFrame, y: np.ndarray, folds: int = 5, repeats: int = 4) -> float:
    """Mean held-out accuracy of ``fit(train_frame).predict(test_frame)`` over repeated stratified folds."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    folds = min(folds, int(y.sum()), int(len(y) - y.sum()))
    if folds < 2:
        return float("nan")
    scores = []
    splits = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=0)
    for train, test in splits.split(np.zeros(len(y)), y):
        model = fit(fin.iloc[train])
        if model is None:
            return float("nan")
        scores.append(float((model.predict(fin.iloc[test]) == y[test].astype(bool)).mean()))
    return float(np.mean(scores))


def best_boundary(res: Results, df: pd.DataFrame, params: list[str], kinds=FAILURES):
    """The boundary that predicts another study best: the decision tree, or a numeric parameter's edge
    per category (``lr`` per ``optimizer``) when that wins by cross-validation on this study.

    The tree is kept unless the per-category edges classify held-out trials at least one
    point better: a model is chosen for predicting fresh trials, not for fitting these.
    """
    tree = fit_boundary(res, df, params, kinds)
    fin = finished(df)
    y = event(fin, kinds)
    numeric = [p for p in params if res.is_numeric(p) and p in fin]
    cats = [p for p in params if not res.is_numeric(p) and p in fin and 2 <= fin[p].nunique(dropna=False) <= 8]
    if tree is None or tree.tree is None or not numeric or not cats or len(fin) < MIN_TRIALS:
        return tree
    # the parameter that carries the edge: the one-parameter edge's, else every numeric one is tried
    edge = primary_edge(res, df, numeric, kinds)
    candidates = [edge.param] if edge is not None else numeric
    tree_cv = cv_accuracy(lambda f: fit_boundary(res, f, params, kinds), fin, y)
    best, best_cv = tree, tree_cv
    for param in candidates:
        for cat in cats:
            cv = cv_accuracy(lambda f, c=cat, p=param: CategoryEdges.fit(res, f, c, p, kinds), fin, y)
            if not np.isnan(cv) and (np.isnan(best_cv) or cv >= best_cv + 0.01):
                model = CategoryEdges.fit(res, fin, cat, param, kinds)
                if model is not None:
                    best, best_cv = model, cv
                    best.about = (
                        f"{param} edge per {cat}, chosen over the decision tree by cross-validation on this "
                        f"study ({cv:.0%} of held-out trials against {tree_cv:.0%})"
                    )
    return best


def fit_boundary(res: Results, df: pd.DataFrame, params: list[str], kinds=FAILURES) -> Boundary | None:
    """The tree ``regions`` shows, fitted on the finished trials of ``df`` (None: no parameter)."""
    from sklearn.tree import DecisionTreeClassifier

    fin = finished(df)
    X, feats = design(res, fin, params)
    y = event(fin, kinds)
    n = len(y)
    depth = 2 if n < 150 else 3
    min_leaf = max(3, round(0.05 * n))
    names = ", ".join(dict.fromkeys(("log " if f.kind == "log" else "") + f.param for f in feats))
    about = f"decision tree, depth {depth}, leaves of at least {min_leaf} trials, on {names}"
    if not feats or n == 0:
        return None if not feats else Boundary(None, [], tuple(kinds), about)
    tree = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=min(min_leaf, max(1, n // 2)), random_state=0).fit(
        X, y
    )
    return Boundary(tree, feats, tuple(kinds), about)


def tree_rules(res: Results, df: pd.DataFrame, params: list[str], kinds=FAILURES) -> tuple[list[Rule], str]:
    """A shallow decision tree's leaves as rules, sibling leaves that agree merged; and its description."""
    fin = finished(df)
    b = best_boundary(res, df, params, kinds)
    if isinstance(b, CategoryEdges):
        return b.rules(fin), b.about
    if b is None or b.tree is None:
        return [], b.about if b is not None else "decision tree on no parameter"
    feats, about, tree = b.feats, b.about, b.tree
    X = design(res, fin, params)[0]
    y = event(fin, kinds)
    path = tree.decision_path(X).tocsc()
    size = np.asarray(path.sum(axis=0)).ravel()
    hits = np.asarray(path[y == 1].sum(axis=0)).ravel()
    t = tree.tree_

    def verdict(node) -> int:
        """0: rarely fails (<= 25 %), 2: mostly fails (>= 75 %), 1: in between."""
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
            return here  # both sides tell the same story (rarely, mostly or sometimes fails): one rule
        return a + b

    rules = walk(0, [])
    rules.sort(key=lambda r: (-r.failed / r.trials, -r.trials))
    return rules, about


def _conditions(conds: list, feats: list[Feature]) -> str:
    """Path conditions → words, one per parameter: ``0.1 < lr <= 0.9 and normalizer = z_score``."""
    if not conds:
        return "every trial"
    by_param: dict[str, dict] = {}
    for f, op, t, x, missing in conds:
        c = by_param.setdefault(
            f.param, {"low": None, "high": None, "cats": None, "feat": f, "x": x, "missing": True, "any_missing": False}
        )
        if f.kind == "cat":
            everything = [g.category for g in feats if g.param == f.param] + ([f.other] if f.other else [])
            cats = c["cats"] if c["cats"] is not None else list(dict.fromkeys(everything))
            c["cats"] = [k for k in cats if (k != f.category if op == "<=" else k == f.category)]
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
