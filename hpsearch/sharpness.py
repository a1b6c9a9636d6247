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
    return {"sharpness": first, "sharpness_step": step,
            "lr_sharpness": lr * first if lr is not None else None,
            "lr_sharpness_peak": lr * max(v for _, v in measured) if lr is not None else None,
            "sharpness_limit": limit_of(row)}


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


def separation(df: pd.DataFrame) -> list[str]:
    """A few lines for ``regions``: among diverged trials with a measured sharpness, how many were
    past their optimizer's limit at the first traced step, and how far."""
    if "lr_sharpness" not in df or "sharpness_limit" not in df:
        return []
    known = df[pd.to_numeric(df["lr_sharpness"], errors="coerce").notna()]
    if known.empty:
        return []
    x = pd.to_numeric(known["lr_sharpness"], errors="coerce")
    limit = pd.to_numeric(known["sharpness_limit"], errors="coerce")
    with_limit = limit.notna()
    lines = [f"Sharpness (measured in the {len(known)} diverged trials with a trace; lr·λ_max at the first traced "
             f"step against the optimizer's limit):"]
    if with_limit.any():
        past = int((x[with_limit] > limit[with_limit]).sum())
        ratio = (x[with_limit] / limit[with_limit]).median()
        lines.append(f"  past the limit in {past} of {int(with_limit.sum())} (median lr·λ_max = {ratio:.1f}× the limit)")
        early = known[with_limit & (pd.to_numeric(known["sharpness_step"], errors="coerce") == 1)]
        if len(early) and len(early) < int(with_limit.sum()):
            lines.append(f"  ({len(early)} of them measured at step 1, the initialization; the others only "
                         f"{TRACE_WINDOW} steps before their blow-up)")
    if (~with_limit).any():
        lines.append(f"  {int((~with_limit).sum())} with an adaptive optimizer: no stability limit to compare with")
    lines.append("  stable trials carry no sharpness (only a blow-up pays for the measurement): "
                 "`python -m hpsearch edge SPACE` measures it for configurations of the space")
    return lines


TRACE_WINDOW = 32
