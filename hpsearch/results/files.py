"""Study → pandas frames → the files in ``results/<study>/``.

The CSV files are the contract every analysis command reads (see README,
"Results"); they are rewritten atomically (temp file, then rename) so a killed
run never leaves half a file behind.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from hpsearch.mlp import TRACE_COLUMNS
from hpsearch.results.columns import CURVE_COLUMNS, INT_COLUMNS
from hpsearch.results.sharpness import columns as sharpness_columns
from hpsearch.results.tables import summary_text
from hpsearch.vocabulary import ATTR_OUTCOME, ATTR_TEST, FAILURES, OK, OPTUNA_RETRY_ROOT, RETRY_OF, WORKER_ID


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` so that readers see the old file or the new one, never a part.

    The temporary file is created like any other file (the umask decides its mode)
    and named after this process, so a later export can remove what a killed one left.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(
            fd, "wb" if isinstance(text, bytes) else "w", **({} if isinstance(text, bytes) else {"newline": ""})
        ) as fh:
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


def _outcome(t) -> str | None:
    """A trial recorded without an outcome (before the attribute existed, or still running)."""
    if t.state == TrialState.COMPLETE:
        return OK
    reason = t.user_attrs.get("prune_reason")
    return reason if t.state == TrialState.PRUNED and reason in FAILURES else None


def trials_frame(
    study: optuna.Study, param_order: list[str] | None = None, constants: dict | None = None
) -> pd.DataFrame:
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
            "outcome": ua.get(ATTR_OUTCOME) or _outcome(t),
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
        row["stopped_early"] = ua.get("stopped_early")  # the epoch early stopping ended the trial at
        test = tests.get(str(t.number), {})
        row["test_accuracy"] = test.get("test_accuracy")
        row["div_epoch"] = ua.get("div_epoch")
        row["div_step"] = ua.get("div_step")
        row["div_where"] = ua.get("div_where")
        row.update(sharpness_columns(ua.get("trace"), row))  # diverged trials: lr·λ_max before the blow-up
        row["chance"] = ua.get("chance")
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
        df = pd.DataFrame(columns=["number", "state", "outcome", "prune_reason", "fail_reason", "value", *names])
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


def export(
    study: optuna.Study,
    results_dir: Path,
    *,
    param_order=None,
    constants=None,
    metric="val_accuracy",
    about: list[str] | None = None,
) -> pd.DataFrame:
    """Write trials.csv, curves.csv, divergence.csv and summary.md; returns the trials frame.

    ``about`` heads summary.md: its first line is the title (the study), the rest say
    what ran (data set, space file, metric)."""
    results_dir = Path(results_dir)
    remove_stale_temporaries(results_dir)
    df = trials_frame(study, param_order, constants)
    atomic_write(results_dir / "trials.csv", df.to_csv(index=False))
    atomic_write(results_dir / "curves.csv", curves_frame(study).to_csv(index=False))
    atomic_write(results_dir / "divergence.csv", divergence_frame(study).to_csv(index=False))
    summary = summary_text(df, metric=metric, params=param_order, markdown=True, about=about)
    atomic_write(results_dir / "summary.md", summary)
    return df
