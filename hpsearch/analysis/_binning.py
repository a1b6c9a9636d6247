"""Cutting a parameter into the rows of a ``regions`` table, and numbers short enough for them.

Log-spaced bins for log-scaled parameters, equal-width bins for the others, one bin per
value of an int with few values, one per category; studies compared side by side share
one binning so their rows line up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hpsearch.results import Results

NOT_SAMPLED = "not sampled"


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
        groups = [
            [g for g in grid if (edges[i] < g <= edges[i + 1]) or (i == 0 and g == edges[0])] for i in range(n_bins)
        ]
        groups = [g for g in groups if g]
        labels = [num(g[0]) if len(g) == 1 else f"{num(g[0])} – {num(g[-1])}" for g in groups]
        return Binning(
            param,
            "log bins" if log else "bins",
            labels,
            upper=np.array([g[-1] for g in groups], float),
            lows=[g[0] for g in groups],
        )
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
