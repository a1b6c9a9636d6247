"""``hpsearch narrow``: coarse-to-fine search — a new space file around the best trials.

Each searched range shrinks to where the top fraction of the completed trials lie, plus a
margin of a tenth of the original range (in log space for log-scaled parameters), clipped
to the original range; int ranges stay on their ``step`` grid. A numeric parameter with a
failure edge (see :func:`hpsearch.analysis._boundary.failure_edge`: a split where most trials
fail — any kind: overflow, nan, collapsed, dead, stalled — at least 3 of them, Fisher p < 0.01)
is kept on the safe side of it. Only trials that learned (outcome ``ok``) are ever centred
on: failed and chance-level trials are never "top". A choice keeps the options the top
trials used, less those that still fail often inside the narrowed ranges. Constants,
``when`` conditions and ``[study]`` stay
(the study gets a new name so its results do not mix with the original's); a conditional
parameter whose condition can no longer hold is dropped, and said so.
The file is built by :meth:`hpsearch.space.Space.to_toml`, so ``hpsearch check`` accepts it.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch._args import add_results_dir
from hpsearch.analysis._binning import num
from hpsearch.analysis._boundary import EDGE_RATE, MIN_CLASS, event, failure_edge, finished
from hpsearch.errors import HPSearchError, ResultsError, SpaceError
from hpsearch.results import Results, atomic_write, open_results
from hpsearch.vocabulary import OK

MARGIN = 0.1  # of the original range, on each side of the top trials' range
MIN_TOP = 3
MARK = "# written by hpsearch narrow"


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="the space file to write (default: RESULTS_DIR/narrowed.toml)",
    )
    p.add_argument(
        "--top",
        type=_top,
        default=0.2,
        metavar="FRACTION|K",
        help="the best trials the ranges are fitted to: a fraction of the completed trials like 0.2 "
        f"(at least {MIN_TOP} trials), or a count like 15 (default: 0.2)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="study name in the new file (default: the original name + '-narrow', so results do not mix)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite FILE even if narrow did not write it (default: refuse)"
    )


def _top(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--top must be a fraction like 0.2 or a count like 15, got {text!r}"
        ) from None
    if not value > 0 or (value > 1 and not value.is_integer()) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"--top must be a fraction in (0, 1] or a whole count >= 1, got {text}")
    return value


def top_count(top: float, completed: int) -> int:
    if top > 1:
        return min(int(top), completed)
    return min(completed, max(MIN_TOP, math.ceil(top * completed)))


# ---------------------------------------------------------------- one parameter


@dataclass
class Change:
    """What happened to one parameter: ``new`` is the tuple for ``Space.to_toml`` or ``None`` (kept)."""

    key: str  # the to_toml keyword (an Optuna name)
    label: str  # as shown: lr, hidden nodes, ...
    before: str
    after: str
    note: str
    new: tuple | None = None


def _floor_sig(x: float, digits: int = 2) -> float:
    if x <= 0:
        return math.floor(x * 10**6) / 10**6 if x < 0 else 0.0
    e = math.floor(math.log10(x)) - digits + 1
    return float(f"{math.floor(round(x / 10**e, 9)) * 10**e:.{digits + 1}g}")


def _ceil_sig(x: float, digits: int = 2) -> float:
    if x <= 0:
        return -_floor_sig(-x, digits) if x < 0 else 0.0
    e = math.floor(math.log10(x)) - digits + 1
    return float(f"{math.ceil(round(x / 10**e, 9)) * 10**e:.{digits + 1}g}")


def _describe(dist) -> str:
    if hasattr(dist, "choices"):
        return _options(dist.choices)
    kind = (
        ("log-uniform" if dist.log else "uniform")
        if not hasattr(dist, "step") or dist.step is None
        else ("log-int" if dist.log else "int")
    )
    step = f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
    return f"{kind} {num(dist.low)} – {num(dist.high)}{step}"


def _options(options) -> str:
    word = lambda o: ("true" if o else "false") if isinstance(o, bool) else str(o)  # noqa: E731  as in TOML
    return "{" + ", ".join(map(word, options)) + "}"


def shrink(values: np.ndarray, dist) -> tuple:
    """The top trials' range plus the margin, clipped to ``dist`` and snapped to its grid (ints)."""
    log = bool(dist.log)
    f = np.log10 if log else (lambda v: v)
    inv = (lambda v: 10**v) if log else (lambda v: v)
    low, high = float(dist.low), float(dist.high)
    margin = MARGIN * (f(high) - f(low))
    lo = inv(max(f(low), f(values.min()) - margin))
    hi = inv(min(f(high), f(values.max()) + margin))
    integer = isinstance(getattr(dist, "step", None), int)
    if not integer and log:
        lo, hi = max(low, _floor_sig(lo)), min(high, _ceil_sig(hi))
        return lo, hi
    if not integer:  # a linear range rounds to a grid of its own width: 0–0.4 gives 0.0, not 0.0036
        grid = 10 ** math.floor(math.log10((high - low) / 20))
        lo = max(low, float(f"{math.floor(lo / grid + 1e-9) * grid:.12g}"))
        hi = min(high, float(f"{math.ceil(hi / grid - 1e-9) * grid:.12g}"))
        if hi <= lo:
            lo, hi = (lo, min(high, lo + grid)) if lo + grid <= high else (max(low, hi - grid), hi)
        return lo, hi
    step = dist.step
    lo = int(low + math.floor((lo - low) / step + 1e-9) * step)
    hi = int(low + math.ceil((hi - low) / step - 1e-9) * step)
    lo, hi = max(int(low), lo), min(int(high), hi)
    if hi <= lo:  # one value left: an int range needs two
        hi, lo = (lo + step, lo) if lo + step <= high else (hi, hi - step)
    return lo, hi


def _apply_edge(res: Results, name: str, dist, lo, hi, edge) -> tuple:
    """Keep ``lo .. hi`` on the safe side of a divergence edge; returns (lo, hi, note)."""
    integer = isinstance(getattr(dist, "step", None), int)
    t = edge.threshold
    support = f"{edge.d_side} of {edge.n_side} trials there {edge.what}"
    if edge.side == ">":
        cap = int(t) if integer else max(float(dist.low), _floor_sig(t))
        if integer:
            cap = int(dist.low + math.floor((cap - dist.low) / dist.step) * dist.step)
        if cap >= hi:
            return lo, hi, f"below the edge at {name} {num(t)} already"
        if cap <= lo:
            return lo, hi, f"not capped: the top trials reach past the edge at {name} {num(t)} ({support})"
        return lo, cap, f"capped at the edge {edge.text} ({support})"
    floor = (int(t) + dist.step) if integer else min(float(dist.high), _ceil_sig(t))
    if integer:
        floor = int(dist.low + math.ceil((floor - dist.low) / dist.step) * dist.step)
    if floor <= lo:
        return lo, hi, f"above the edge at {name} {num(t)} already"
    if floor >= hi:
        return lo, hi, f"not raised: the top trials reach past the edge at {name} {num(t)} ({support})"
    return floor, hi, f"raised above the edge {edge.text} ({support})"


def _span(values) -> str:
    return f"{num(min(values), 3)} – {num(max(values), 3)}"


def plan(res: Results, space, top: pd.DataFrame) -> list[Change]:
    """One :class:`Change` per searched parameter (layer widths of a variable-depth hidden: one)."""
    dists = space.distributions()
    variable = "n_layers" in dists or "n_layers" in space.constants()
    groups: dict[str, list[str]] = {}
    for name in dists:
        key = "hidden_1" if variable and name.startswith("hidden_") else name
        groups.setdefault(key, []).append(name)
    changes = []
    edged: set[str] = set()  # numeric parameters with a failure edge of their own
    for key, names in groups.items():
        dist = dists[key]
        label = "hidden nodes" if len(names) > 1 else key
        before = _describe(dist)
        cols = [n for n in names if n in top]
        values = pd.concat([top[n] for n in cols]).dropna() if cols else pd.Series(dtype=object)
        if values.empty:
            changes.append(Change(key, label, before, "unchanged", "not sampled among the top trials"))
            continue
        if hasattr(dist, "choices"):
            used = {str(v) for v in values}
            keep = tuple(c for c in dist.choices if str(c) in used or _same_number(c, values))
            if len(keep) == len(dist.choices) or not keep:
                changes.append(Change(key, label, before, "unchanged", "every option is among the top trials"))
            else:
                dropped = [_options([c])[1:-1] for c in dist.choices if c not in keep]
                changes.append(
                    Change(
                        key,
                        label,
                        before,
                        _options(keep),
                        f"dropped {', '.join(dropped)} (not among the top trials)",
                        keep,
                    )
                )
            continue
        x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
        lo, hi = shrink(x, dist)
        note = f"top {_span(x)}"
        edge = failure_edge(res, res.trials, key) if len(names) == 1 else None
        if edge is not None:
            lo, hi, edge_note = _apply_edge(res, key, dist, lo, hi, edge)
            note += f"; {edge_note}"
            edged.add(key)
        if (lo, hi) == (dist.low, dist.high):
            changes.append(Change(key, label, before, "unchanged", note))
        else:
            step = f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
            changes.append(
                Change(
                    key,
                    label,
                    before,
                    f"{num(lo, 3)} – {num(hi, 3)}{step}",
                    note,
                    (type(dist.low)(lo), type(dist.high)(hi)),
                )
            )
    _drop_failing_options(res, dists, {k: v for k, v in groups.items() if k in edged or not edged}, changes)
    return changes


def _drop_failing_options(res: Results, dists: dict, groups: dict[str, list[str]], changes: list[Change]) -> None:
    """Drop a kept option that still fails often inside the narrowed ranges of the parameters
    that have a failure edge (``groups``: all numeric ones when none has).

    The edge of a numeric parameter can differ by option (momentum and adam fail at a far
    lower lr than plain SGD), and a space file cannot give each option its own range; so an
    option goes, as long as another stays, when at least 3 of the study's trials with it
    inside the new ranges failed and either half of them did or it fails significantly more
    often than the option that fails least there (Fisher's exact test, p < 0.05, and a
    quarter of its trials or more).
    """
    from scipy.stats import fisher_exact

    fin = finished(res.trials)
    inside = np.ones(len(fin), bool)
    by_key = {c.key: c for c in changes}
    for key, names in groups.items():
        dist = dists[key]
        if hasattr(dist, "choices"):
            continue
        c = by_key.get(key)
        lo, hi = c.new if c is not None and c.new is not None else (dist.low, dist.high)
        for n in names:
            if n in fin:
                x = pd.to_numeric(fin[n], errors="coerce").to_numpy(dtype=float)
                inside &= np.isnan(x) | ((x >= lo) & (x <= hi))
    failed = event(fin).astype(bool)
    for c in changes:
        dist = dists[c.key]
        if not hasattr(dist, "choices") or c.key not in fin:
            continue
        keep = list(c.new if c.new is not None else dist.choices)
        labels = fin[c.key].astype(str).to_numpy()
        counts = {}
        for o in keep:
            m = inside & (labels == str(o))
            counts[o] = (int(failed[m].sum()), int(m.sum()))
        seen = {o: dn for o, dn in counts.items() if dn[1]}
        if len(seen) < 2:
            continue
        safest = min(seen, key=lambda o: seen[o][0] / seen[o][1])
        sd, sn = seen[safest]
        going = []
        for o, (d, n) in sorted(seen.items(), key=lambda kv: -kv[1][0] / kv[1][1]):
            if o == safest or d < MIN_CLASS:
                continue
            worse = d / n >= 0.25 and fisher_exact([[d, n - d], [sd, sn - sd]], alternative="greater")[1] < 0.05
            if d / n >= EDGE_RATE or worse:
                going.append(o)
        if not going:
            continue
        keep = tuple(o for o in keep if o not in going)
        why = "; ".join(
            f"dropped {_options([o])[1:-1]} ({counts[o][0]} of {counts[o][1]} trials with it inside the "
            f"new ranges failed, {sd} of {sn} with {_options([safest])[1:-1]})"
            for o in going
        )
        c.note = why if c.new is None else f"{c.note}; {why}"
        c.after, c.new = _options(keep), keep


def _same_number(option, values: pd.Series) -> bool:
    if isinstance(option, bool) or not isinstance(option, (int, float)):
        return False
    x = pd.to_numeric(values, errors="coerce")
    return bool((x == option).any())


# ---------------------------------------------------------------- the file


def _new_name(name: str) -> str:
    m = re.fullmatch(r"(.*)-narrow(\d*)", name)
    if m:
        return f"{m.group(1)}-narrow{int(m.group(2) or 1) + 1}"
    return f"{name}-narrow"


def build(space, changes: list[Change], study_name: str) -> tuple[str, dict[str, str]]:
    """The new file's text, and the parameters dropped because their condition can no longer hold."""
    kwargs = {c.key: c.new for c in changes if c.new is not None}
    dropped: dict[str, str] = {}
    for _ in range(len(space.param_names()) + 1):
        try:
            return space.to_toml(**kwargs, study={"name": study_name}), dropped
        except SpaceError as err:
            m = re.fullmatch(r"params\.([^.\[]+)\.when(\..+)?", err.path)
            if not m or m.group(1) in dropped:
                raise
            kwargs[m.group(1)] = None  # back to the MLP default: its condition never holds in the new space
            dropped[m.group(1)] = f"its condition {err.message}"
    raise HPSearchError("narrow: could not build a valid space")


def _header(res: Results, k: int, n: int, top: pd.DataFrame, original: str) -> str:
    lo, hi = top["value"].min(), top["value"].max()
    lines = [
        f"{MARK} from {res.path} ({res.name}):",
        f"# ranges around the top {k} of {n} completed trials ({res.metric} {lo:.4g} – {hi:.4g}), "
        f"away from the {len(res.failed)} failed.",
    ]
    lead = []
    for line in original.splitlines():
        if not line.startswith("#"):
            break
        lead.append(line)
    if lead:
        lines += ["# the original file began:", *lead]
    return "\n".join(lines) + "\n\n"


def narrowed(res: Results, space, top: float = 0.2, name: str | None = None) -> tuple[str, list[Change], int]:
    """(the new space file's text, what changed per parameter, how many top trials it rests on)."""
    done = learned(res)
    k = top_count(top, len(done))
    changes = plan(res, space, done.head(k))
    text, dropped = build(space, changes, name or _new_name(res.name))
    for c in changes:
        if c.key in dropped:
            c.after, c.note = "dropped", dropped.pop(c.key)
    return _header(res, k, len(done), done.head(k), space.text) + text, changes, k


def learned(res: Results) -> pd.DataFrame:
    """The trials that learned, best first; an error saying so when none did (the top of the study is
    at chance, or blew up: there is nothing to centre a narrower space on)."""
    done = res.completed
    done = done[done["outcome"] == OK]
    if done.empty:
        raise ResultsError(
            f"{res.path}: no trial learned ({res.counts()}); every one ended at chance level or "
            f"failed, so there is nothing to narrow around — lower the learning rate range or change "
            f"the space"
        )
    return done


def _writable(out: Path, res: Results, force: bool) -> None:
    if out.resolve() == (res.path / "space.toml").resolve():
        raise ResultsError(
            f"-o {out}: that is the study's own space.toml (the record of what was run); choose another file"
        )
    if out.is_dir():
        raise ResultsError(f"-o {out}: is a directory; give a file name like {out / 'narrowed.toml'}")
    if out.exists() and not force:
        try:
            first = out.read_text(errors="replace").splitlines()[:1]
        except OSError:
            first = []
        if not (first and first[0].startswith(MARK)):
            raise ResultsError(f"-o {out}: exists and was not written by narrow; choose another file or pass --force")
    if not out.parent.is_dir():
        raise ResultsError(f"-o {out}: no such directory {out.parent}")


def main(args) -> int:
    from hpsearch.space import load_space

    res = open_results(args.results_dir)
    space_file = res.path / "space.toml"
    if not space_file.is_file():
        raise ResultsError(
            f"{res.path}: no space.toml, so there is no space to narrow (narrow needs the file that was run)"
        )
    space = load_space(space_file)
    done = learned(res)
    out = args.output or res.path / "narrowed.toml"
    _writable(out, res, args.force)
    k = top_count(args.top, len(done))
    top = done.head(k)
    changes = plan(res, space, top)
    name = args.name or _new_name(res.name)
    text, dropped = build(space, changes, name)
    for c in changes:
        if c.key in dropped:
            c.after, c.note = "dropped", dropped.pop(c.key)
    atomic_write(out, _header(res, k, len(done), top, space.text) + text)

    share = f"{round(100 * k / len(done))} % of {len(done)}" if args.top <= 1 else f"of {len(done)}"
    print(
        f"Narrowing {res.name} around its top {k} completed trials ({share}; {res.metric} "
        f"{top['value'].min():.4g} – {top['value'].max():.4g}), away from {len(res.failed)} failed:"
    )
    if k < 5:
        print(f"  (only {k} trials: the new ranges rest on few points)")
    rows = [[c.label, c.before, "→", c.after, c.note] for c in changes]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  " + "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4])
    else:
        print("  no searched parameters: nothing to narrow")
    for key, why in dropped.items():  # a constant or unsearched parameter whose condition broke
        print(f"  {key}: dropped — {why}")
    kept = [f"{key}={v}" for key, v in space.constants().items()]
    if kept:
        print(f"Kept constants: {', '.join(kept)}; conditions and [study] settings kept.")
    print(f"Wrote {out} (study {name}).")
    if re.match(r"(csv|npz|mnist):(?!/)", space.study.dataset):
        print(
            f"note: dataset {space.study.dataset!r} is a relative path, read from the space file's directory; "
            f"move {out.name} next to the data or make the path absolute"
        )
    print(f"Next: python -m hpsearch run {out}")
    return 0
