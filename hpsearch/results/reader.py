"""Reading a results directory back: what every analysis command and the library start from.

:func:`open_results` turns a results directory into a :class:`Results` (the trials
frame plus what the study was: metric, searched parameters and their scales). It
works while a study is still running (rows in state RUNNING) and on a directory
copied without its ``meta.json`` (a bare ``trials.csv``): then the metric, the
parameters and their scales are guessed from the columns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch._registry import did_you_mean
from hpsearch.errors import ResultsError
from hpsearch.results.columns import CURVE_COLUMNS, INT_COLUMNS, NUMERIC_COLUMNS, RESULT_COLUMNS, SHORT
from hpsearch.results.tables import (
    counts_line,
    derive_outcome,
    diverged_mask,
    failed_mask,
    ranked,
)
from hpsearch.vocabulary import METRICS

#: a positive numeric column spanning more than this ratio is read on a log scale (when meta.json is missing)
LOG_SPAN = 100.0


# ---------------------------------------------------------------- reading a results directory


@dataclass
class Results:
    """One results directory, read: ``trials`` is trials.csv; the rest says how to read it."""

    path: Path
    name: str
    trials: pd.DataFrame
    metric: str  # "val_accuracy" (maximized) or "val_loss" (minimized)
    params: list[str]  # searched parameters (Optuna names) that have a column, in space order
    scales: dict[str, str]  # param -> "log" | "linear" | "int" | "log_int" | "categorical"
    constants: dict = field(default_factory=dict)
    guessed: bool = False  # no meta.json: metric, parameters and scales were inferred

    @property
    def maximize(self) -> bool:
        return METRICS.get(self.metric, "maximize") == "maximize"

    @property
    def metric_label(self) -> str:
        return SHORT.get(self.metric, self.metric)

    @property
    def completed(self) -> pd.DataFrame:
        """COMPLETE trials with a value, best first."""
        return ranked(self.trials[self.trials["value"].notna()], self.metric)

    @property
    def diverged(self) -> pd.DataFrame:
        return self.trials[diverged_mask(self.trials)]

    @property
    def finished(self) -> pd.DataFrame:
        """Trials that ran to a verdict on divergence: completed, diverged, or stopped by the pruner."""
        return self.trials[self.trials["state"].isin(["COMPLETE", "PRUNED"])]

    @property
    def failed(self) -> pd.DataFrame:
        """Trials that ended in a failure of any kind (``outcome`` other than ``ok``)."""
        return self.trials[failed_mask(self.trials)]

    def counts(self) -> str:
        """``80 trials: 59 ok, 21 failed (dead 15, overflow 6), 3 running``."""
        return counts_line(self.trials)

    def is_log(self, param: str) -> bool:
        return self.scales.get(param) in ("log", "log_int")

    def is_numeric(self, param: str) -> bool:
        return self.scales.get(param, "categorical") != "categorical"

    @cached_property
    def curves(self) -> pd.DataFrame:
        return _read_optional(self.path / "curves.csv", ["number", "epoch", *CURVE_COLUMNS])

    @cached_property
    def divergence(self) -> pd.DataFrame:
        from hpsearch.mlp import TRACE_COLUMNS

        # traces written before the sharpness column existed are read with it empty
        df = _read_optional(
            self.path / "divergence.csv", ["number", "reason", *(c for c in TRACE_COLUMNS if c != "sharpness")]
        )
        if "sharpness" not in df:
            df["sharpness"] = float("nan")
        return df

    @cached_property
    def space(self):
        """The space that was run (space.toml), or ``None`` if missing or unreadable here."""
        from hpsearch.errors import HPSearchError
        from hpsearch.space import load_space

        path = self.path / "space.toml"
        if not path.is_file():
            return None
        try:
            return load_space(path)
        except HPSearchError:
            return None

    def searched_range(self, param: str):
        """``(low, high)`` of a numeric parameter in the space that was run, else of the data; or ``None``."""
        space = self.space
        if space is not None:
            dist = space.distributions().get(param)
            if dist is not None and hasattr(dist, "low"):
                return float(dist.low), float(dist.high)
        values = pd.to_numeric(self.trials[param], errors="coerce").dropna() if param in self.trials else ()
        if len(values) == 0:
            return None
        return float(values.min()), float(values.max())

    def choices(self, param: str) -> list:
        """The options of a categorical parameter: the space's order, then any others seen in the data."""
        seen = [v for v in pd.unique(self.trials[param].dropna())]
        space = self.space
        if space is not None:
            dist = space.distributions().get(param)
            if dist is not None and hasattr(dist, "choices"):
                options = list(dist.choices)
                return options + [v for v in seen if str(v) not in {str(o) for o in options}]
        return sorted(seen, key=str)

    def check_params(self, names: list[str], option: str = "--params") -> list[str]:
        """Expand ``hidden`` to its layers and reject names that are not searched parameters."""
        out = []
        for name in names:
            if name == "hidden" and "hidden" not in self.params:
                layers = [p for p in self.params if re.fullmatch(r"hidden_\d+|n_layers", p)]
                if layers:
                    out += [p for p in layers if p not in out]
                    continue
            if name not in self.params:
                if name in self.constants or (name in self.trials and self.trials[name].nunique() <= 1):
                    value = self.constants.get(
                        name,
                        self.trials[name].dropna().iloc[0]
                        if name in self.trials and self.trials[name].notna().any()
                        else None,
                    )
                    raise ResultsError(
                        f"{option}: {name} was not searched in {self.path} (constant {value!r}); "
                        f"searched: {', '.join(self.params) or 'none'}"
                    )
                raise ResultsError(
                    f"{option}: unknown parameter {name!r}{did_you_mean(name, self.params)} "
                    f"(searched in {self.path}: {', '.join(self.params) or 'none'})"
                )
            if name not in out:
                out.append(name)
        return out


def _read_csv(path: Path, fallback: pd.DataFrame) -> pd.DataFrame:
    """A results CSV where only an empty cell is missing ("nan" is a divergence reason, not NaN)."""
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return fallback


def _read_optional(path: Path, columns: list[str]) -> pd.DataFrame:
    """A side file (curves, divergence): empty frame when missing or unreadable mid-write."""
    empty = pd.DataFrame(columns=columns)
    df = _read_csv(path, empty)
    return df if set(columns) <= set(df.columns) else empty


def infer_scale(values: pd.Series) -> str:
    """Scale of a parameter column when meta.json is missing: categorical, int, log_int, linear or log."""
    s = values.dropna()
    if s.empty or s.dtype == bool or not pd.api.types.is_numeric_dtype(s):
        return "categorical"
    x = s.astype(float).to_numpy()
    wide = bool((x > 0).all() and x.max() / x.min() > LOG_SPAN)
    if np.all(np.mod(x, 1) == 0):
        return "log_int" if wide else "int"
    return "log" if wide else "linear"


def _infer_metric(df: pd.DataFrame) -> str:
    """val_loss if every completed value sits at or below its last val_loss and not so for accuracy."""
    done = df[df["value"].notna()]
    if done.empty or "val_loss" not in done or "val_accuracy" not in done:
        return "val_accuracy"
    as_acc = (done["value"] >= done["val_accuracy"] - 1e-9).all() and (done["value"] <= 1 + 1e-9).all()
    as_loss = (done["value"] <= done["val_loss"] + 1e-9).all()
    return "val_loss" if as_loss and not as_acc else "val_accuracy"


def open_results(results_dir) -> Results:
    """Read a results directory, or raise one clear :class:`ResultsError`. An empty study is an error."""
    path = Path(results_dir)
    df = load_trials(path)
    if df.empty:
        raise ResultsError(f"{path}: no trials yet (trials.csv has no rows)")
    for col in ("prune_reason", "fail_reason"):
        if col not in df:
            df[col] = np.nan
    if "outcome" not in df:  # written before outcomes existed: what state and reason say
        df.insert(int(df.columns.get_loc("state")) + 1, "outcome", derive_outcome(df))
    meta = read_meta(path)
    candidates = [c for c in df.columns if c not in RESULT_COLUMNS]
    guessed = not meta.get("params")
    if guessed:
        params = [c for c in candidates if df[c].nunique(dropna=True) > 1]
        constants = {c: df[c].dropna().iloc[0] for c in candidates if c not in params and df[c].notna().any()}
    else:
        params = [p for p in meta["params"] if p in df.columns]
        constants = dict(meta.get("constants") or {})
    scales = {p: (meta.get("scales") or {}).get(p) or infer_scale(df[p]) for p in params}
    metric = meta.get("metric") or _infer_metric(df)
    return Results(
        path=path,
        name=meta.get("name") or path.name,
        trials=df,
        metric=metric,
        params=params,
        scales=scales,
        constants=constants,
        guessed=guessed,
    )


# ---------------------------------------------------------------- columns people type


def aliases(res: Results) -> dict[str, str]:
    """Header names shown in the tables (``val_acc``, ``batch``, ``trial``) → the trials.csv column."""
    out = {
        "trial": "number",
        "epoch": "best_epoch",
        "metric": "value",
        res.metric_label: "value",
        "reason": "prune_reason",
    }
    out.update({short: col for col, short in SHORT.items() if short not in out and col in res.trials})
    return {a: c for a, c in out.items() if a not in res.trials.columns}


def column(res: Results, name: str, option: str) -> str:
    """The trials.csv column ``name`` refers to, or an error listing the columns with did-you-mean."""
    if name in res.trials.columns:
        return name
    alias = aliases(res)
    if name in alias:
        return alias[name]
    known = [*res.trials.columns, *alias]
    raise ResultsError(
        f"{option}: unknown column {name!r}{did_you_mean(name, known)} "
        f"(columns: {', '.join(map(str, res.trials.columns))})"
    )


def where(res: Results, query: str) -> pd.DataFrame:
    """Rows of ``res.trials`` matching a pandas query; header names (val_acc, batch) work too."""
    frame = res.trials.copy()
    for alias, col in aliases(res).items():
        frame[alias] = frame[col]
    try:
        mask = frame.eval(query)
    except pd.errors.UndefinedVariableError as exc:
        name = re.search(r"name '([^']+)'", str(exc))
        word = name.group(1) if name else None
        holders = [
            c
            for c in res.trials.columns
            if not pd.api.types.is_numeric_dtype(res.trials[c]) and (res.trials[c].astype("string") == word).any()
        ]
        if holders:  # a bare word that is a value, not a column: it needs quotes
            raise ResultsError(
                f"--where {query!r}: {word!r} is a value of column {holders[0]!r}, not a column; "
                f"quote it: \"{holders[0]} == '{word}'\""
            ) from None
        raise ResultsError(
            f"--where {query!r}: unknown column {name.group(1) if name else '?'!r}"
            f"{did_you_mean(name.group(1), frame.columns) if name else ''} "
            f"(columns: {', '.join(map(str, res.trials.columns))})"
        ) from None
    except Exception as exc:  # pandas raises SyntaxError, ValueError, TypeError, KeyError ... for a bad query
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ResultsError(
            f"--where {query!r}: not a valid condition ({first}); "
            f"write it like \"lr > 0.1 and normalizer == 'z_score'\""
        ) from None
    if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask.dtype):
        raise ResultsError(
            f'--where {query!r}: not a condition (it gives values, not true/false); write it like "lr > 0.1"'
        )
    return res.trials[mask.to_numpy()]


def load_trials(results_dir: Path) -> pd.DataFrame:
    """trials.csv of a results directory, or one clear error."""
    results_dir = Path(results_dir)
    if results_dir.is_file():
        hint = " — a space file: run it with `hpsearch run`" if results_dir.suffix == ".toml" else ""
        if results_dir.name == "trials.csv":
            hint = f" — give its directory: {results_dir.parent}"
        raise ResultsError(f"{results_dir}: a file, not a results directory{hint}")
    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir}: no such results directory")
    path = results_dir / "trials.csv"
    if not path.is_file():
        inside = sorted(p.parent.name for p in results_dir.glob("*/trials.csv"))
        if inside:  # the results root: say which studies it holds
            shown = ", ".join(str(results_dir / n) for n in inside[:8]) + (", …" if len(inside) > 8 else "")
            what = f"its study: {shown}" if len(inside) == 1 else f"name one of its {len(inside)} studies: {shown}"
            raise ResultsError(f"{results_dir} is a results root, not a study; {what}")
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
            raise ResultsError(
                f"{path}: column {col!r}, line {row + 2}: {str(df[col].iloc[row])[:60]!r} is not a number"
            )
        df[col] = values
    return df


#: trials.csv columns of text (an all-empty one is still text, not float)
TEXT_COLUMNS = ("state", "outcome", "prune_reason", "fail_reason", "div_where", "hidden", "worker", "datetime_start")


def typed(df: pd.DataFrame, scales: dict | None = None) -> pd.DataFrame:
    """``df`` (a trials frame) with each column's real type: counts and widths as nullable integers
    (``Int64``: 17, not 17.0; missing is ``<NA>``), text as ``string``, measurements as floats,
    and the parameters by their scale (``int``/``log_int`` → ``Int64``)."""
    out = df.copy()
    scales = scales or {}
    for col in out.columns:
        whole = (
            col in INT_COLUMNS
            or col == "trial_seed"
            or re.fullmatch(r"hidden_\d+", col)
            or scales.get(col) in ("int", "log_int")
        )
        if col in TEXT_COLUMNS:
            out[col] = out[col].astype("string")
        elif whole:
            values = pd.to_numeric(out[col], errors="coerce")
            if (values.dropna() % 1 == 0).all():
                out[col] = values.round().astype("Int64")
        elif col in NUMERIC_COLUMNS or scales.get(col) in ("linear", "log"):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out


def read_trials(results_dir) -> pd.DataFrame:
    """trials.csv of a results directory with every column's real type (see :func:`typed`).

    ``pd.read_csv`` alone reads a column of whole numbers with a gap as float64 and an
    all-empty text column as float64; this is the reader to use from Python.
    """
    return typed(load_trials(results_dir), read_meta(results_dir).get("scales"))


def read_meta(results_dir: Path) -> dict:
    """meta.json written by ``run``: metric, direction, parameter order and scales."""
    path = Path(results_dir) / "meta.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
