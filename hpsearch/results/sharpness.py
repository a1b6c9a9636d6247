"""What the sharpness says about diverged trials: their ``trials.csv`` columns, one sentence each,
and how well ``lr · λ_max > limit`` separates the diverged trials of a study.

The trainer measures ``λ_max`` (the loss's sharpness, :func:`hpsearch.mlp.sharpness`) while it
replays the last steps before a blow-up: the ``sharpness`` column of the divergence trace
(``divergence.csv``), known at the first traced step, every 8 steps and the last one. Gradient
descent is stable on a quadratic while ``lr · λ_max`` stays below its optimizer's limit (2 for
sgd, ``2 + 2·momentum`` with momentum; none for adaptive optimizers). Only diverged trials pay
for the measurement, so only they have these columns.
"""

from __future__ import annotations

import math

import pandas as pd

from hpsearch.mlp import TRACE_COLUMNS, MLPConfig, stability_limit

#: trials.csv columns added for diverged trials (empty for the others)
COLUMNS = ("sharpness", "sharpness_step", "lr_sharpness", "lr_sharpness_peak", "sharpness_limit")


def limit_of(row) -> float | None:
    """The stability limit of ``lr · λ_max`` for a trial's optimizer (``None``: adaptive, or unknown)."""
    optimizer = _get(row, "optimizer") or "sgd"
    momentum = _get(row, "momentum")
    try:
        config = MLPConfig(optimizer=str(optimizer), **({"momentum": float(momentum)} if momentum is not None else {}))
    except (ValueError, TypeError):
        return None
    return stability_limit(config)


def _get(row, key):
    value = row.get(key) if hasattr(row, "get") else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _measured(trace) -> list[tuple[int, float]]:
    """``(step, λ_max)`` of the trace rows that carry a sharpness (rows as stored: lists in
    ``TRACE_COLUMNS`` order, or dicts)."""
    out = []
    for r in trace or []:
        row = r if isinstance(r, dict) else dict(zip(TRACE_COLUMNS, r))
        value = row.get("sharpness")
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out.append((int(row["step"]), float(value)))
    return out


def columns(trace, row) -> dict:
    """The sharpness columns of one trial from its stored trace and its parameters ``row``:
    ``sharpness`` (λ_max at the first traced step, ``sharpness_step``), ``lr_sharpness``
    (``lr`` times it), ``lr_sharpness_peak`` (the largest ``lr · λ_max`` of the trace) and
    ``sharpness_limit`` (what the optimizer tolerates); all ``None`` without a measurement."""
    measured = _measured(trace)
    lr = _get(row, "lr")
    if not measured:
        return dict.fromkeys(COLUMNS)
    step, first = measured[0]
    lr = float(lr) if lr is not None else None
    return {
        "sharpness": first,
        "sharpness_step": step,
        "lr_sharpness": lr * first if lr is not None else None,
        "lr_sharpness_peak": lr * max(v for _, v in measured) if lr is not None else None,
        "sharpness_limit": limit_of(row),
    }


def story(number: int, trace: pd.DataFrame, row) -> str | None:
    """``trial 17: lr·λ_max 6.0 at step 1, past the sgd limit 2; 20 at step 9; overflow at step 19``."""
    measured = _measured(trace.to_dict("records") if isinstance(trace, pd.DataFrame) else trace)
    lr = _get(row, "lr")
    if not measured or lr is None:
        return None
    lr = float(lr)
    limit = limit_of(row)
    optimizer = _get(row, "optimizer") or "sgd"
    parts = []
    below = None
    crossed = False
    for step, value in measured:
        x = lr * value
        if limit is not None and not crossed and x > limit:
            crossed = True
            if below is None:
                parts.append(f"lr·λ_max {_num(x)} at step {step}, already past the {optimizer} limit {_num(limit)}")
            else:
                parts.append(f"lr·λ_max crossed {_num(limit)} between step {below} and {step} (now {_num(x)})")
        else:
            if limit is not None and x <= limit and not crossed:
                below = step
            parts.append(f"{_num(x)} at step {step}" if parts else f"lr·λ_max {_num(x)} at step {step}")
    if limit is None:
        parts.append(f"no stability limit for {optimizer}")
    elif not crossed:
        parts.append(f"below the {optimizer} limit {_num(limit)} at every measured step")
    reason = _get(row, "prune_reason") or "blow-up"
    at = _get(row, "div_step")
    end = f"; {reason} at step {int(at)}" if at is not None else ""
    return f"trial {number}: " + "; ".join(parts) + end


def _num(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 100 else f"{x:.3g}"


def separation(df: pd.DataFrame, diverged: pd.Series, edge: float | None = None) -> list[str]:
    """A few lines for ``regions``: how well ``lr · λ_max > limit`` separates the diverged trials of
    ``df`` (the finished ones; ``diverged`` their labels) from the others, next to the boundary
    ``lr > edge`` that ``regions`` fitted.

    Only diverged trials carry a sharpness; when their trace starts at step 1 it is λ_max at
    initialization, which does not depend on ``lr``: its median over them stands for every
    trial's, and the rule becomes ``lr > limit / λ_max``."""
    if "sharpness" not in df or "lr" not in df:
        return []
    lr = pd.to_numeric(df["lr"], errors="coerce")
    lam = pd.to_numeric(df["sharpness"], errors="coerce")
    step = pd.to_numeric(df.get("sharpness_step"), errors="coerce")
    initial = lam[diverged & (step == 1)].dropna()
    if initial.empty:
        known = lam[diverged].dropna()
        if known.empty:
            return []
        later = pd.to_numeric(df.loc[known.index, "sharpness_step"], errors="coerce")
        return [
            (
                f"Sharpness: measured in {len(known)} diverged trials, in the last steps before their blow-up "
                f"(from step {int(later.min())}), never at initialization — nothing to compare the stable "
                f"trials with; `python -m hpsearch edge SPACE` measures it at initialization."
            )
        ]
    limits = df.apply(limit_of, axis=1)
    known_limit = limits.notna() & lr.notna()
    if not known_limit.any():
        return [
            (
                f"Sharpness: λ_max at initialization {float(initial.median()):.3g} (median of {len(initial)} "
                f"diverged trials); adaptive optimizers have no stability limit to compare lr·λ_max with."
            )
        ]
    lam0 = float(initial.median())
    y = diverged[known_limit].astype(bool)
    x = lr[known_limit] * lam0 / limits[known_limit].astype(float)  # lr·λ_max in units of the limit
    n = len(y)

    def right(c: float) -> int:
        return int(((x > c) == y).sum())

    names = sorted({_optimizer(r) for _, r in df[known_limit].iterrows()})
    shown = "; ".join(f"{o} {_num(lim)}" for o, lim in _limits(df[known_limit]).items())
    alone = f"  lr·λ_max > limit alone classifies {right(1.0)} of {n} trials" + (
        f" (lr > {_num(float((limits[known_limit] / lam0).median()))})" if len(names) == 1 else ""
    )
    lines = [
        (
            f"Sharpness (λ_max at initialization, median of {len(initial)} diverged trials whose trace starts at "
            f"step 1: {lam0:.3g}; limit of lr·λ_max: {shown}):"
        ),
        alone,
    ]
    if edge is not None:
        lines[-1] += f"; the boundary lr > {_num(edge)} {int(((lr[known_limit] > edge) == y).sum())} of {n}"
    grid = sorted({1.0, *[float(v) for v in x]})
    best = max(grid, key=lambda c: (right(c), -abs(math.log(c))))
    if best > 1.0 and right(best) > right(1.0):
        lines.append(
            f"  the best cut is lr·λ_max > {best:.1f}× the limit ({right(best)} of {n}): past the quadratic "
            f"limit the first steps flatten the loss (catapult) and runs survive, up to about {best:.1f}×"
        )
    return lines


def _optimizer(row) -> str:
    return str(_get(row, "optimizer") or "sgd")


def _limits(df: pd.DataFrame) -> dict:
    out: dict = {}
    for _, r in df.iterrows():
        lim = limit_of(r)
        if lim is not None:
            out.setdefault(_optimizer(r), []).append(lim)
    return {k: (v[0] if len(set(v)) == 1 else float(pd.Series(v).median())) for k, v in out.items()}
