"""Snapshots of the training state, and the divergence trace rebuilt by replaying from one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hpsearch.mlp._workspace import ERRSTATE, Blowup, Workspace

TRACE_COLUMNS = (
    "epoch",
    "step",
    "max_abs_preact_out",
    "max_abs_w_out",
    "max_abs_grad_w_out",
    "max_abs_grad_hidden",
    "sharpness",
)
TRACE_STEPS = 32  # steps kept in the divergence trace
SHARPNESS_EVERY = 8  # trace steps between two measurements of the sharpness (see replay_trace)
SNAPSHOT_EVERY = 4 * TRACE_STEPS  # steps between two snapshots of the training state (>= TRACE_STEPS)


class Snapshots:
    """The training state after step ``s`` for the last two multiples ``s`` of SNAPSHOT_EVERY
    (buffers reused: nothing is allocated after the first two). The older one is at
    least SNAPSHOT_EVERY >= TRACE_STEPS steps back, so one of them precedes the last
    TRACE_STEPS steps."""

    def __init__(self, model, optimizer, rng):
        self.model, self.optimizer, self.rng = model, optimizer, rng
        self.slots = []

    def _arrays(self):
        model = self.model
        return {
            "params": model.params,
            **{f"mean{i}": a for i, a in enumerate(model.running_mean)},
            **{f"var{i}": a for i, a in enumerate(model.running_var)},
            **{f"opt.{k}": a for k, a in self.optimizer.state().items() if k != "t"},
        }

    def take(self, step: int) -> None:
        slot = self.slots.pop(0) if len(self.slots) == 2 else {"arrays": {}}
        kept = slot["arrays"]
        live = self._arrays()
        for key, src in live.items():
            dst = kept.get(key)
            if dst is None or dst.shape != src.shape:
                kept[key] = src.copy()
            else:
                np.copyto(dst, src)
        for key in [k for k in kept if k not in live]:
            del kept[key]
        slot["step"] = step
        slot["t"] = self.optimizer.t
        slot["rng"] = self.rng.bit_generator.state if self.rng is not None else None
        self.slots.append(slot)

    def restore(self, upto: int) -> int:
        """Put back the latest snapshot taken at or before step ``upto``; returns its step."""
        slot = max((s for s in self.slots if s["step"] <= upto), key=lambda s: s["step"])
        model, opt = self.model, self.optimizer
        kept = slot["arrays"]
        np.copyto(model.params, kept["params"])
        for i, a in enumerate(model.running_mean):
            np.copyto(a, kept[f"mean{i}"])
        for i, a in enumerate(model.running_var):
            np.copyto(a, kept[f"var{i}"])
        opt.load_state({"t": slot["t"], **{k[4:]: a for k, a in kept.items() if k.startswith("opt.")}})
        if self.rng is not None:
            self.rng.bit_generator.state = slot["rng"]
        return slot["step"]


def replay_trace(
    snapshots: Snapshots,
    perms,
    last: int,
    load: Callable[[int, np.ndarray], Workspace],
    optimizer,
    workspaces: list[Workspace],
    measure: Callable[[], float | None] | None = None,
) -> list[tuple]:
    """The trace rows of the (up to) ``TRACE_STEPS`` steps ending at step ``last``: the
    latest snapshot before them is restored and the steps from there are run again
    with tracing on, the failing one last. ``perms`` holds ``(epoch, steps before it,
    its permutation)`` for the epochs the replay may reach back to; ``load(j, perm)``
    loads batch ``j`` of such an epoch and returns the workspace that runs it.
    Exact: the same arithmetic on the same batches gives the same numbers.

    ``measure()`` (optional) returns the sharpness of the loss at the current parameters;
    it is called before the first traced step, every ``SHARPNESS_EVERY`` steps after it and
    before the last one, and its value fills the row's ``sharpness`` (``None`` elsewhere):
    the curvature each of those steps started from."""
    first = max(1, last - TRACE_STEPS + 1)
    at = snapshots.restore(first - 1)
    rows = []
    for ws in workspaces:
        ws.tracing = True
    try:
        with np.errstate(**ERRSTATE):
            for s in range(at + 1, last + 1):
                epoch, before, perm = next(e for e in reversed(perms) if e[1] < s)
                ws = load(s - before - 1, perm)
                sharp = None
                if measure is not None and s >= first and (not (s - first) % SHARPNESS_EVERY or s == last):
                    sharp = measure()
                try:
                    ws.train_step(optimizer)
                except Blowup:  # the failing step: the magnitudes it reached before blowing up
                    rows.append((epoch, s, *_last_magnitudes(ws), sharp))
                    break
                if s >= first:
                    rows.append((epoch, s, *ws.trace, sharp))
    finally:
        for ws in workspaces:
            ws.tracing = False
    return [_no_nan(r) for r in rows[-TRACE_STEPS:]]


def _last_magnitudes(ws: Workspace) -> tuple:
    """The failing step's trace values; the output weights are read as they are now."""
    pre, _, gw, gh = ws.trace
    with np.errstate(all="ignore"):
        w = float(np.abs(ws.model.W[-1]).max())
    return pre, w, gw, gh


def _no_nan(row):
    # results never hold NaN: an unknown or NaN magnitude is None
    return tuple(None if isinstance(v, float) and v != v else v for v in row)
