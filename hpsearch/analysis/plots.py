"""``hpsearch plot``: PNG figures of a study in ``RESULTS_DIR/plots/``.

- ``metric_vs_<param>.png``: the metric of every trial that learned against each parameter
  (log axis for log-scaled ones); failed trials (overflow, nan, collapsed, dead, stalled: each
  kind its own mark), which have no score, are marked at their parameter value in a strip on the
  "worse" side of the axis, and the failure edge (see ``hpsearch regions``) is drawn as a dashed line;
- ``pair_<a>_<b>.png``: two parameters (default lr × alpha) with every trial marked by its outcome;
- ``history.png``: the metric by trial number with the best so far;
- ``curves.png``: learning curves (validation metric and training loss) of the best runs;
- ``divergence.png``: for diverged runs, the four magnitudes of ``divergence.csv`` against the
  optimizer step on a log scale — the blow-up growing until the step it overflowed.

Figures are drawn with matplotlib's object API on the Agg canvas (no display, no global
pyplot state) and written atomically, so a reader never sees half a PNG.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch._args import add_results_dir, whole
from hpsearch.errors import ResultsError
from hpsearch.results import FAILURES, Results, atomic_write, derive_outcome, failed_mask, open_results

#: what became of a trial -> (label, colour, marker): each failure kind of OUTCOMES has its own mark
STYLE = {
    "ok": ("learned (ok)", "#1f77b4", "o"),
    "overflow": ("overflow", "#d62728", "x"),
    "nan": ("nan", "#9467bd", "x"),
    "collapsed": ("collapsed to chance", "#ff7f0e", "v"),
    "dead": ("dead: a hidden layer stopped", "#8c564b", "s"),
    "stalled": ("stalled at chance", "#bcbd22", "D"),
    "pruned": ("stopped by the pruner", "#7f7f7f", "^"),
    "error": ("error (no result)", "#000000", "P"),
}
TRACE_LABELS = {
    "max_abs_preact_out": "max |pre-activation|, output layer",
    "max_abs_w_out": "max |weight|, output layer",
    "max_abs_grad_w_out": "max |weight gradient|, output layer",
    "max_abs_grad_hidden": "max |gradient| into the last hidden layer",
}
DPI = 110


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument(
        "--params",
        default=None,
        metavar="P1,P2",
        help="parameters that get a metric_vs_<param> figure, comma-separated; 'hidden' means every layer "
        "width (default: every searched parameter)",
    )
    p.add_argument(
        "--pair",
        default=None,
        metavar="A,B",
        help="the two parameters of the pair scatter (default: lr,alpha if searched, else the first two "
        "numeric parameters)",
    )
    p.add_argument(
        "--top",
        type=whole("--top", 1),
        default=5,
        metavar="K",
        help="best runs whose learning curves are drawn (default: 5)",
    )
    p.add_argument(
        "--traces",
        type=whole("--traces", 1),
        default=6,
        metavar="N",
        help="diverged runs whose divergence traces are drawn, the longest traces first (default: 6)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the PNG files (default: RESULTS_DIR/plots)",
    )


# ---------------------------------------------------------------- helpers


def _figure(width=7.5, height=4.8, **kw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained", **kw)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path | None):
    """Write ``fig`` as a PNG at ``path`` atomically; with no path, return the figure (the library's ``plot``)."""
    if path is None:
        return fig
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI)
    atomic_write(path, png.getvalue())  # mode from the umask, like every result file
    return path


def outcome(df: pd.DataFrame) -> pd.Series:
    """ok / a failure kind / pruned (by the pruner) / error (FAIL) / running, per trial."""
    out = pd.Series("running", index=df.index, dtype=object)
    out[df["state"] == "COMPLETE"] = "ok"
    out[df["state"] == "FAIL"] = "error"
    out[df["state"] == "PRUNED"] = "pruned"
    kinds = df["outcome"] if "outcome" in df else derive_outcome(df)
    failed = df["state"].isin(["COMPLETE", "PRUNED"]) & kinds.isin(FAILURES)
    out[failed] = kinds[failed].astype(str)
    return out


def metric_words(res: Results) -> str:
    return ("validation accuracy" if res.metric == "val_accuracy" else "validation loss") + " (best epoch)"


def _positions(res: Results, param: str, values: pd.Series, rng) -> tuple[np.ndarray, list | None]:
    """x positions: the values themselves, or category indices with a little jitter."""
    if res.is_numeric(param):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float), None
    cats = [str(c) for c in res.choices(param)]
    index = {c: i for i, c in enumerate(cats)}
    x = np.array([index.get(str(v), np.nan) if not pd.isna(v) else np.nan for v in values], dtype=float)
    return x + rng.uniform(-0.18, 0.18, len(x)), cats


def _axis(ax, res: Results, param: str, cats, which: str = "x") -> None:
    set_scale = ax.set_xscale if which == "x" else ax.set_yscale
    set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
    if cats is not None:
        ticks = ax.set_xticks if which == "x" else ax.set_yticks
        ticks(range(len(cats)), cats)
        set_label(param)
        return
    if res.is_log(param):
        set_scale("log")
    rng = res.searched_range(param)
    if rng is not None and rng[1] > rng[0] and (rng[0] > 0 or not res.is_log(param)):
        # the whole searched range, also when only unscored trials (drawn off the data axes) are there
        lo, hi = rng
        pad = (hi / lo) ** 0.04 if res.is_log(param) else 0.04 * (hi - lo)
        (ax.set_xlim if which == "x" else ax.set_ylim)(
            *((lo / pad, hi * pad) if res.is_log(param) else (lo - pad, hi + pad))
        )
    set_label(f"{param}" + (" (log scale)" if res.is_log(param) else ""))


def _strip_y(res: Results) -> float:
    """Axes fraction where trials without a score are marked: the 'worse' side."""
    return 0.03 if res.maximize else 0.97


def _room_for_strip(ax, res: Results) -> None:
    """Widen the metric axis on the worse side so the strip of unscored trials sits clear of the points."""
    lo, hi = ax.get_ylim()
    pad = 0.08 * (hi - lo)
    ax.set_ylim(lo - pad, hi) if res.maximize else ax.set_ylim(lo, hi + pad)


# ---------------------------------------------------------------- the figures


def metric_vs_param(res: Results, param: str, out: Path) -> Path | None:
    from matplotlib.transforms import blended_transform_factory

    from hpsearch.analysis._boundary import failure_edge

    df = res.trials
    kinds = outcome(df)
    rng = np.random.default_rng(0)
    x, cats = _positions(res, param, df[param], rng)
    y = df["value"].to_numpy(dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    strip = blended_transform_factory(ax.transData, ax.transAxes)
    done = (kinds == "ok").to_numpy() & ~np.isnan(x) & ~np.isnan(y)
    label, colour, marker = STYLE["ok"]
    ax.scatter(x[done], y[done], s=22, c=colour, marker=marker, alpha=0.75, label=f"{label} ({done.sum()})")
    for kind in (*FAILURES, "pruned", "error"):
        m = (kinds == kind).to_numpy() & ~np.isnan(x)
        if m.any():
            label, colour, marker = STYLE[kind]
            ax.scatter(
                x[m],
                np.full(m.sum(), _strip_y(res)),
                transform=strip,
                s=30,
                c=colour,
                marker=marker,
                label=f"{label} ({m.sum()}), no score: marked at their {param}",
            )
    if done.any():
        i = np.flatnonzero(done)[np.argmax(y[done]) if res.maximize else np.argmin(y[done])]
        ax.scatter(
            [x[i]],
            [y[i]],
            s=140,
            facecolors="none",
            edgecolors="#2ca02c",
            linewidths=1.8,
            label=f"best: trial {int(df['number'].iloc[i])} ({y[i]:.4g})",
        )
    edge = failure_edge(res, df, param)
    if edge is not None:
        ax.axvline(
            edge.threshold,
            color="#d62728",
            linestyle="--",
            linewidth=1,
            label=f"edge: {edge.text} ({edge.d_side} of {edge.n_side} failed)",
        )
    _axis(ax, res, param, cats)
    _room_for_strip(ax, res)
    ax.set_ylabel(metric_words(res))
    if not done.any():
        ax.text(0.5, 0.5, "no completed trial yet", transform=ax.transAxes, ha="center", color="#555555")
    ax.set_title(
        f"{res.name}: {metric_words(res)} against {param}\n"
        f"{done.sum()} learned, {int(failed_mask(df).sum())} failed of {len(df)} trials"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out and out / f"metric_vs_{param}.png")


def pair(res: Results, a: str, b: str, out: Path) -> Path:
    df = res.trials
    kinds = outcome(df)
    rng = np.random.default_rng(1)
    x, xcats = _positions(res, a, df[a], rng)
    y, ycats = _positions(res, b, df[b], rng)
    fig = _figure(7, 5.6)
    ax = fig.add_subplot()
    for kind in ("ok", "pruned", "error", *FAILURES):
        m = (kinds == kind).to_numpy() & ~np.isnan(x) & ~np.isnan(y)
        if m.any():
            label, colour, marker = STYLE[kind]
            ax.scatter(x[m], y[m], s=28, c=colour, marker=marker, alpha=0.8, label=f"{label} ({m.sum()})")
    _axis(ax, res, a, xcats, "x")
    _axis(ax, res, b, ycats, "y")
    both = int((~np.isnan(x) & ~np.isnan(y)).sum())
    ax.set_title(f"{res.name}: {a} × {b}, every trial coloured by outcome\n({both} trials with both parameters)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out and out / f"pair_{a}_{b}.png")


def history(res: Results, out: Path) -> Path:
    from matplotlib.transforms import blended_transform_factory

    df = res.trials.sort_values("number")
    kinds = outcome(df)
    fig = _figure(8, 4.6)
    ax = fig.add_subplot()
    done = df[df["value"].notna()]
    ax.scatter(done["number"], done["value"], s=16, c=STYLE["ok"][1], alpha=0.5, label=f"completed trial ({len(done)})")
    if len(done):
        best = done["value"].cummax() if res.maximize else done["value"].cummin()
        ax.step(done["number"], best, where="post", color="#2ca02c", linewidth=2, label="best so far")
    strip = blended_transform_factory(ax.transData, ax.transAxes)
    for kind in ("overflow", "nan"):
        m = (kinds == kind).to_numpy()
        if m.any():
            label, colour, marker = STYLE[kind]
            ax.scatter(
                df["number"][m],
                np.full(m.sum(), _strip_y(res)),
                transform=strip,
                s=26,
                c=colour,
                marker=marker,
                label=f"{label} ({m.sum()}), no score",
            )
    _room_for_strip(ax, res)
    ax.set_xlabel("trial number (order started)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric_words(res))
    ax.set_title(f"{res.name}: {metric_words(res).split(' (')[0]} of each trial, and the best so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out and out / "history.png")


def curves(res: Results, k: int, out: Path) -> Path | None:
    top = res.completed.head(k)
    c = res.curves
    if top.empty or c.empty:
        return None
    fig = _figure(11, 4.6)
    left, right = fig.subplots(1, 2)
    val_col = "val_accuracy" if res.metric == "val_accuracy" else "val_loss"
    key_params = [p for p in (["lr"] if "lr" in res.params else []) + res.params if res.is_numeric(p)][:1]
    for rank, (_, t) in enumerate(top.iterrows(), 1):
        rows = c[c["number"] == t["number"]].sort_values("epoch")
        if rows.empty:
            continue
        shown = ", ".join(f"{p} {t[p]:.3g}" for p in key_params if not pd.isna(t.get(p)))
        label = f"#{rank}: trial {int(t['number'])}, {res.metric_label} {t['value']:.4g}"
        label += f" ({shown})" if shown else ""
        (line,) = left.plot(rows["epoch"], rows[val_col], marker=".", label=label)
        best = rows[rows["epoch"] == t["best_epoch"]]
        if len(best):
            left.scatter(best["epoch"], best[val_col], s=70, facecolors="none", edgecolors=line.get_color())
        right.plot(rows["epoch"], rows["train_loss"], marker=".", color=line.get_color(), label=label)
    words = val_col.replace("val_", "validation ")
    left.set_title(f"{words} per epoch (circle: the best epoch)")
    left.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):  # epochs are whole: no tick at 2.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel(words)
    right.set_title("training loss per epoch")
    right.set_xlabel("epoch")
    right.set_ylabel("training loss (log scale)")
    right.set_yscale("log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{res.name}: learning curves of the best {len(top)} runs"
        if len(top) > 1
        else f"{res.name}: learning curves of the best run"
    )
    return _save(fig, out and out / "curves.png")


def divergence(res: Results, n: int, out: Path) -> Path | None:
    from hpsearch.mlp import TRACE_COLUMNS

    tr = res.divergence
    div = res.diverged
    if tr.empty or div.empty:
        return None
    tr = tr[tr["number"].isin(div["number"])]
    sizes = tr.groupby("number").size().sort_values(ascending=False, kind="stable")
    chosen = sorted(sizes.index[:n])
    if not chosen:
        return None
    cols = min(3, len(chosen))
    rows = -(-len(chosen) // cols)
    # wide enough for the title and the legend even with one trial
    fig = _figure(max(4.4 * cols, 7.5), 3.4 * rows + 1.2)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    info = div.set_index("number")
    shown = [p for p in res.params if res.is_numeric(p)][:2]
    for ax, number in zip(axes, chosen):
        t = tr[tr["number"] == number].sort_values("step")
        for col in TRACE_COLUMNS:
            if col not in t or col in ("epoch", "step", "sharpness"):
                continue
            v = pd.to_numeric(t[col], errors="coerce").abs()
            ok = np.isfinite(v) & (v > 0)
            ax.plot(t["step"][ok], v[ok], marker=".", markersize=3, label=TRACE_LABELS.get(col, col))
        row = info.loc[number]
        _sharpness_curve(ax, t, row)
        if not pd.isna(row.get("div_step")):
            ax.axvline(row["div_step"], color="#d62728", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("magnitude (log scale)")
        params = ", ".join(f"{p} {row[p]:.3g}" for p in shown if not pd.isna(row.get(p)))
        when = ""
        if not pd.isna(row.get("div_step")) and not pd.isna(row.get("div_epoch")):
            when = f" at epoch {int(row['div_epoch'])}, step {int(row['div_step'])}"
        ax.set_title(f"trial {int(number)} ({params})\n{row['prune_reason']}{when}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(chosen) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    more = f" ({len(chosen)} of {len(div)}, the longest traces)" if len(div) > len(chosen) else ""
    fig.suptitle(f"{res.name}: the last steps before divergence{more}\ndotted line: the step it blew up", fontsize=10)
    return _save(fig, out and out / "divergence.png")


def _sharpness_curve(ax, t: pd.DataFrame, row) -> None:
    """lr·λ_max where the trace measured the sharpness, and the optimizer's stability limit."""
    from hpsearch.results.sharpness import limit_of

    if "sharpness" not in t or pd.isna(row.get("lr")):
        return
    x = pd.to_numeric(t["sharpness"], errors="coerce") * float(row["lr"])
    ok = np.isfinite(x) & (x > 0)
    if not ok.any():
        return
    ax.plot(
        t["step"][ok],
        x[ok],
        color="black",
        marker="D",
        markersize=4,
        linewidth=1.2,
        label="lr·λ_max (λ_max: the loss's sharpness)",
    )
    limit = limit_of(row)
    if limit is not None:
        ax.axhline(limit, color="black", linestyle="--", linewidth=0.8, label="stability limit of lr·λ_max")


# ---------------------------------------------------------------- the command


def _default_pair(res: Results) -> tuple[str, str] | None:
    if "lr" in res.params and "alpha" in res.params:
        return "lr", "alpha"
    numeric = [p for p in res.params if res.is_numeric(p)]
    if "lr" in numeric and len(numeric) > 1:
        return "lr", next(p for p in numeric if p != "lr")
    ordered = numeric + [p for p in res.params if p not in numeric]
    return (ordered[0], ordered[1]) if len(ordered) > 1 else None


def main(args) -> int:
    res = open_results(args.results_dir)
    if args.pair:
        names = [t.strip() for t in args.pair.split(",") if t.strip()]
        if len(names) != 2 or names[0] == names[1]:
            raise ResultsError(f"--pair takes two different parameters like lr,alpha, got {args.pair!r}")
        res.check_params(names, "--pair")
        chosen_pair = (names[0], names[1])
    else:
        chosen_pair = _default_pair(res)
    chosen = res.params
    if args.params is not None:
        names = [t.strip() for t in args.params.split(",") if t.strip()]
        if not names:
            raise ResultsError(f"--params: no parameter given in {args.params!r}")
        chosen = res.check_params(names)
    out = args.out or res.path / "plots"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"{out}: cannot create the plots directory ({exc.strerror})") from None
    written, skipped = [], []
    for p in chosen:
        written.append(metric_vs_param(res, p, out))
    if chosen_pair:
        written.append(pair(res, *chosen_pair, out))
    else:
        skipped.append("pair scatter: fewer than two searched parameters")
    written.append(history(res, out))
    c = curves(res, args.top, out)
    written.append(c) if c else skipped.append("curves.png: no completed trial with a learning curve yet")
    d = divergence(res, args.traces, out)
    written.append(d) if d else skipped.append("divergence.png: no diverged trial with a trace")
    print(f"Wrote {len(written)} figures of {res.name} ({res.counts()}) to {out}/:")
    for path in written:
        print(f"  {path.name}")
    for note in skipped:
        print(f"  (no {note})")
    return 0
