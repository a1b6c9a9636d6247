"""Study → pandas tables → the files in ``results/<study>/``, and the tables people read.

The CSV files are the contract every analysis command reads (see README,
"Results"); they are rewritten atomically (temp file, then rename) so a killed
run never leaves half a file behind.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from hpsearch.errors import ResultsError
from hpsearch.mlp import TRACE_COLUMNS
from hpsearch.sharpness import COLUMNS as SHARPNESS_COLUMNS, columns as sharpness_columns
from hpsearch.vocabulary import ATTR_TEST, DIVERGED_REASONS, OPTUNA_RETRY_ROOT, RETRY_OF, WORKER_ID

CURVE_COLUMNS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
#: trials.csv columns that are not parameters (every other column is a parameter)
RESULT_COLUMNS = ("number", "state", "prune_reason", "fail_reason", "value", "best_epoch", "hidden", *CURVE_COLUMNS,
                  "epochs_run", "test_accuracy", "div_epoch", "div_step", "div_where", *SHARPNESS_COLUMNS, "trial_seed", "worker",
                  "retry_of", "retried_as", "seconds", "datetime_start")
INT_COLUMNS = {"number", "best_epoch", "div_epoch", "div_step", "epochs_run", "batch_size", "n_layers",
               "retried_as", "retry_of", "epochs", "stop_epoch", "sharpness_step"}
#: trials.csv columns that hold numbers (besides the numeric parameters meta.json names)
NUMERIC_COLUMNS = {"number", "value", "best_epoch", *CURVE_COLUMNS, "epochs_run", "test_accuracy", "div_epoch",
                   "div_step", "trial_seed", "retry_of", "retried_as", "seconds"}
SHORT = {"val_accuracy": "val_acc", "val_loss": "val_loss", "batch_size": "batch", "normalizer": "norm",
         "test_accuracy": "test_acc", "weight_decay": "wd", "optimizer": "optim"}


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part.

    The temporary file is created like any other file (the umask decides its mode)
    and named after this process, so a later export can remove what a killed one left.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(results_dir: Path) -> int:
    """Remove temporary files of exports whose process is gone (killed mid-write); returns how many."""
    n = 0
    for tmp in Path(results_dir).glob(".*.tmp"):
        pid = tmp.name.split(".")[-3] if tmp.name.count(".") >= 4 else ""
        if pid.isdigit() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _retried(trials) -> dict[int, int]:
    """interrupted trial number → the number of the trial that ran its configuration again."""
    out = {}
    for t in trials:
        parent = t.system_attrs.get(RETRY_OF, t.system_attrs.get(OPTUNA_RETRY_ROOT))
        if parent is not None:
            out[parent] = t.number
    return out


def trials_frame(study: optuna.Study, param_order: list[str] | None = None, constants: dict | None = None) -> pd.DataFrame:
    """One row per trial that has started (WAITING ones are not results yet)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    tests = study.user_attrs.get(ATTR_TEST, {})
    retried = _retried(trials)
    names = list(param_order or [])
    for t in trials:
        names += [n for n in t.params if n not in names]
    rows = []
    for t in trials:
        ua = t.user_attrs
        curve = ua.get("curve") or []
        last = curve[-1] if curve else [None] * 5
        row = {
            "number": t.number,
            "state": t.state.name,
            "prune_reason": ua.get("prune_reason"),
            "fail_reason": ua.get("fail_reason"),
            "value": t.value if t.state == TrialState.COMPLETE else None,
            "best_epoch": ua.get("best_epoch"),
            "hidden": json.dumps(ua["hidden"]) if "hidden" in ua else None,
        }
        for n in names:
            row[n] = t.params.get(n)
        for k, v in (constants or {}).items():
            if k not in row and k != "hidden":
                row[k] = v
        row.update(dict(zip(CURVE_COLUMNS, last[1:5])))
        row["epochs_run"] = len(curve)
        test = tests.get(str(t.number), {})
        row["test_accuracy"] = test.get("test_accuracy")
        row["div_epoch"] = ua.get("div_epoch")
        row["div_step"] = ua.get("div_step")
        row["div_where"] = ua.get("div_where")
        row.update(sharpness_columns(ua.get("trace"), row))  # diverged trials: lr·λ_max before the blow-up
        row["trial_seed"] = ua.get("seed")
        row["worker"] = t.system_attrs.get(WORKER_ID)
        row["retry_of"] = t.system_attrs.get(RETRY_OF, t.system_attrs.get(OPTUNA_RETRY_ROOT))
        row["retried_as"] = retried.get(t.number)
        if t.state == TrialState.FAIL and not row["fail_reason"] and row["retried_as"] is not None:
            # failed by Optuna's heartbeat check, which records no reason of its own
            row["fail_reason"] = "interrupted: its worker stopped sending heartbeats"
        row["seconds"] = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        row["datetime_start"] = t.datetime_start.isoformat(timespec="milliseconds") if t.datetime_start else None
        rows.append(row)
    df = _whole_numbers(pd.DataFrame(rows))
    if df.empty:
        df = pd.DataFrame(columns=["number", "state", "prune_reason", "fail_reason", "value", *names])
    return df


def _whole_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """Counts, widths and seeds as integers in the CSV ("17", not "17.0"), empty where missing."""
    for col in df.columns:
        if col in INT_COLUMNS or col.startswith("hidden_") or col in ("trial_seed", "epoch", "step"):
            values = pd.to_numeric(df[col], errors="coerce")
            if values.notna().any() and (values.dropna() % 1 == 0).all():
                df[col] = values.astype("Int64")
    return df


def curves_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        for r in t.user_attrs.get("curve") or []:
            rows.append({"number": t.number, "epoch": r[0], **dict(zip(CURVE_COLUMNS, r[1:5]))})
    return _whole_numbers(pd.DataFrame(rows, columns=["number", "epoch", *CURVE_COLUMNS]))


def divergence_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        for r in ua.get("trace") or []:
            rows.append({"number": t.number, "reason": ua.get("prune_reason"), **dict(zip(TRACE_COLUMNS, r))})
    return _whole_numbers(pd.DataFrame(rows, columns=["number", "reason", *TRACE_COLUMNS]))


def export(study: optuna.Study, results_dir: Path, *, param_order=None, constants=None, metric="val_accuracy",
           header: str = "") -> pd.DataFrame:
    """Write trials.csv, curves.csv, divergence.csv and summary.md; returns the trials frame."""
    results_dir = Path(results_dir)
    remove_stale_temporaries(results_dir)
    df = trials_frame(study, param_order, constants)
    atomic_write(results_dir / "trials.csv", df.to_csv(index=False))
    atomic_write(results_dir / "curves.csv", curves_frame(study).to_csv(index=False))
    atomic_write(results_dir / "divergence.csv", divergence_frame(study).to_csv(index=False))
    summary = summary_text(df, metric=metric, params=param_order, markdown=True)
    atomic_write(results_dir / "summary.md", (f"# {header}\n\n" if header else "") + summary)
    return df


# ---------------------------------------------------------------- reading results back


def load_trials(results_dir: Path) -> pd.DataFrame:
    """trials.csv of a results directory, or one clear error."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir}: no such results directory")
    path = results_dir / "trials.csv"
    if not path.is_file():
        raise ResultsError(f"{results_dir}: not an hpsearch results directory (no trials.csv)")
    try:
        # only an empty cell is missing: "nan" is a divergence reason, not a missing value
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    missing = {"number", "state", "value"} - set(df.columns)
    if missing:
        raise ResultsError(f"{path}: not an hpsearch trials file (missing columns: {', '.join(sorted(missing))})")
    scales = read_meta(results_dir).get("scales", {})
    numeric = [c for c in df.columns if c in NUMERIC_COLUMNS or scales.get(c, "categorical") != "categorical"]
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & values.isna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ResultsError(f"{path}: column {col!r}, line {row + 2}: {str(df[col].iloc[row])[:60]!r} "
                               f"is not a number")
        df[col] = values
    return df


def read_meta(results_dir: Path) -> dict:
    """meta.json written by ``run``: metric, direction, parameter order and scales."""
    path = Path(results_dir) / "meta.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- tables


def diverged_mask(df: pd.DataFrame) -> pd.Series:
    return (df["state"] == "PRUNED") & df["prune_reason"].isin(DIVERGED_REASONS)


def _fmt(value, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if column in INT_COLUMNS or column.startswith("hidden_"):
            return str(int(v)) if v.is_integer() else f"{v:.4g}"
        if column in ("value", "test_accuracy", "val_accuracy", "train_accuracy"):
            return f"{v:.4f}"
        return f"{v:.3g}"
    return str(value)


def table(df: pd.DataFrame, columns: list[str], *, rank: bool = False, markdown: bool = False,
          headers: dict | None = None) -> str:
    """A fixed-width (or markdown) table of ``columns`` with readable numbers."""
    headers = {**SHORT, **(headers or {})}
    cols = [c for c in columns if c in df.columns]
    body = [[_fmt(v, c) for v, c in zip(row, cols)] for row in df[cols].itertuples(index=False)]
    head = [headers.get(c, c) for c in cols]
    if rank:
        head = ["rank", *head]
        body = [[str(i + 1), *r] for i, r in enumerate(body)]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), *(fmt(r) for r in body)])


def display_columns(df: pd.DataFrame, params: list[str] | None) -> list[str]:
    """The parameters worth comparing: searched ones (per-layer widths folded into ``hidden``)."""
    params = list(params or [c for c in df.columns if c.startswith("hidden_")])
    cols = ["number"]
    if any(p.startswith("hidden_") or p == "n_layers" for p in params) and "hidden" in df.columns:
        cols.append("hidden")
    cols += [p for p in params if not p.startswith("hidden_") and p != "n_layers"]
    return cols


def ranked(df: pd.DataFrame, metric: str, *, worst: bool = False) -> pd.DataFrame:
    done = df[df["state"] == "COMPLETE"].copy()
    ascending = (metric == "val_loss") != worst  # best first, unless worst is asked
    done["_n"] = done["number"]
    return done.sort_values(["value", "_n"], ascending=[ascending, True]).drop(columns="_n")


def summary_text(df: pd.DataFrame, *, metric: str = "val_accuracy", params: list[str] | None = None,
                 top: int = 10, worst: int = 10, markdown: bool = False) -> str:
    """The best, worst and diverged tables as printed at the end of ``run``."""
    cols = display_columns(df, params)
    value_cols = ["value", "best_epoch"] + (["test_accuracy"] if df.get("test_accuracy") is not None and df["test_accuracy"].notna().any() else [])
    heads = {"value": SHORT.get(metric, metric), "best_epoch": "epoch", "number": "trial"}
    n = len(df)
    done = ranked(df, metric)
    parts = []
    fence = (lambda s: f"```\n{s}\n```") if markdown else (lambda s: s)
    if done.empty:
        parts.append(f"No completed trials yet ({n} run).")
    else:
        parts.append(f"Best {min(top, len(done))} of {len(done)} completed ({metric}, best epoch)")
        parts.append(fence(table(done.head(top), cols + value_cols, rank=True, headers=heads)))
        if len(done) > top:  # the worst of those not already shown as best
            w = ranked(df, metric, worst=True).head(min(worst, len(done) - top))
            parts.append(f"\nWorst {len(w)} completed")
            parts.append(fence(table(w, cols + ["value", "best_epoch"], rank=True, headers=heads)))
    div = df[diverged_mask(df)] if n else df
    if len(div):
        counts = div["prune_reason"].value_counts()
        detail = ", ".join(f"{r} {int(counts.get(r, 0))}" for r in DIVERGED_REASONS if counts.get(r, 0))
        parts.append(f"\nDiverged {len(div)} of {n} (pruned: {detail})")
        parts.append(fence(table(div.sort_values("number"), cols + ["prune_reason", "div_epoch", "div_step"],
                                 headers={**heads, "prune_reason": "reason", "div_epoch": "epoch", "div_step": "step"})))
    else:
        parts.append(f"\nDiverged 0 of {n}.")
    others = df[(df["state"] == "PRUNED") & ~diverged_mask(df)] if n else df
    if len(others):
        parts.append(f"Pruned by the pruner: {len(others)}.")
    failed = df[df["state"] == "FAIL"] if n else df
    if len(failed):
        live = failed[failed["retried_as"].isna()] if "retried_as" in failed else failed
        parts.append(f"\nFailed {len(failed)} ({len(failed) - len(live)} interrupted and run again)")
        parts.append(fence(table(failed.sort_values("number"), ["number", "fail_reason", "retried_as"],
                                 headers={"number": "trial", "fail_reason": "reason", "retried_as": "re-run as"})))
    return "\n".join(parts) + "\n"
