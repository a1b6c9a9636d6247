"""The library: ``hpsearch.run`` and ``hpsearch.open`` return a :class:`Study`.

A :class:`Study` is a results directory read as DataFrames, with the analyses of
the commands as objects (``regions``, ``narrow``, ``plot``) and the trained model
of any trial (``model``). The commands ``run``, ``show``, ``regions``, ``narrow``,
``plot`` and ``export`` call the same functions. Errors are
:class:`hpsearch.errors.HPSearchError` subclasses, never ``SystemExit``.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import warnings
from pathlib import Path

import pandas as pd

from hpsearch.errors import HPSearchError, Interrupted, ResultsError
from hpsearch.model import Model
from hpsearch.vocabulary import MODELS_DIR, RESULT_FILES, model_file

#: what ``Study.plot`` draws besides a parameter name
PLOTS = ("pair", "history", "curves", "divergence")


def run(
    space,
    trials: int | None = None,
    jobs: int | None = None,
    epochs: int | None = None,
    dataset: str | None = None,
    seed: int | None = None,
    name: str | None = None,
    out="results",
    storage: str | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    test_top: int | None = None,
    trial_timeout: float | None = None,
    quiet: bool = False,
    patience: int | None = None,
) -> Study:
    """Run (or resume) a study of ``space`` (a TOML file's path, or a :class:`hpsearch.space.Space`).

    Every ``None`` takes the value of the file's ``[study]`` table, as on the command
    line (``trials``: ``[study] trials``; ``jobs``: every core). Running the same call
    again resumes the study up to ``trials``. Progress is one line, updated in place
    in a notebook or on a terminal (``quiet=True``: none). Ctrl-C (a notebook's
    "interrupt") stops the trials, writes the result files, and raises
    :class:`hpsearch.errors.Interrupted`; the finished trials are kept.
    """
    with warnings.catch_warnings():  # optuna's tqdm complains about a notebook without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        from hpsearch.cli import _quiet_optuna
        from hpsearch.space import Space, load_space
        from hpsearch.study import session as runner
        from hpsearch.study.report import NotebookReporter, Reporter, in_notebook

    _quiet_optuna(False)
    space = space if isinstance(space, Space) else load_space(space)
    jobs = jobs or runner.default_jobs()
    overrides = {
        "dataset": dataset,
        "epochs": epochs,
        "name": name,
        "seed": seed,
        "sampler": sampler,
        "pruner": pruner,
        "test_top": test_top,
        "patience": patience,
    }
    n_trials = space.study.trials if trials is None else trials
    rep = NotebookReporter(quiet) if in_notebook() else Reporter(quiet=quiet)
    main_thread = threading.current_thread() is threading.main_thread()
    with runner.Signals() if main_thread else _NoSignals() as signals:
        ctx = runner.setup_run(space, overrides, out=Path(out), storage_url=storage, n_trials=n_trials)
        with signals.deferred():
            finished, _ = runner.run_study(ctx, jobs, trial_timeout, rep, signals, n_trials)
            if not finished:
                rep.say(f"Interrupted: finished trials are kept in {ctx.results_dir}/; run again to resume.")
                raise Interrupted(signals.received[0] if signals.received else 2)
    rep.say(f"Results: {ctx.results_dir}/ ({', '.join(RESULT_FILES)}, {MODELS_DIR}/)")
    return Study(ctx.results_dir, storage=storage)


class _NoSignals:
    """Signals for a run outside the main thread (where Python cannot install handlers)."""

    received: list = []

    def __enter__(self):
        self.received = []
        return self

    def __exit__(self, *exc):
        return None

    def deferred(self):
        import contextlib

        return contextlib.nullcontext(self)


def open(path, *, storage: str | None = None) -> Study:  # noqa: A001 - hpsearch.open(dir) reads like open(file)
    """An existing study: its results directory (``results/<name>``).

    ``storage`` is needed only to rebuild models of a study kept in a database
    (the journal file in the directory serves otherwise).
    """
    return Study(path, storage=storage)


@dataclasses.dataclass
class Regions:
    """``regions`` as an object: per-parameter bins, the boundary rules, the edge; ``print`` it for the report."""

    tables: dict  # parameter -> DataFrame: bin, trials, ok, failed, fail_rate, best, median, best_run, kinds
    rules: pd.DataFrame  # the decision tree's leaves: rule, trials, failed, rate (empty when too few trials failed)
    edge: dict | None  # the one-parameter split that best separates failure: param, side, value, text …
    kinds: dict  # failure kind -> trials
    data: dict  # everything, JSON-ready (what ``regions --format json`` prints)
    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows the report, not a dataclass dump
        p.text(self.text)


def _bins_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if "kinds" in df:
        kinds = pd.DataFrame(list(df.pop("kinds")), index=df.index).fillna(0).astype(int)
        df = pd.concat([df, kinds], axis=1)
    return df


@dataclasses.dataclass
class Narrowed:
    """A narrowed space: ``text`` is the TOML; ``changes`` says what happened to each parameter."""

    text: str
    changes: pd.DataFrame
    top: int  # how many of the best trials it rests on

    def space(self):
        """The new space as a :class:`hpsearch.space.Space`."""
        from hpsearch.space import parse_space

        return parse_space(self.text)

    def save(self, path) -> Path:
        from hpsearch.results import atomic_write

        path = Path(path)
        atomic_write(path, self.text)
        return path

    def __str__(self) -> str:
        return self.text


class Study:
    """A study's results directory, read: DataFrames, the analyses, and trained models.

    Reading is cheap and never changes the directory; every property reads the
    files again when they changed (a study still running shows its progress).
    """

    def __init__(self, path, *, storage: str | None = None):
        from hpsearch.results import open_results

        self.path = Path(path)
        self.storage = storage
        self._res = open_results(self.path)  # a clear ResultsError for a wrong directory
        self._stamp = self._mtime()

    # ---------------------------------------------------------------- reading
    def _mtime(self):
        try:
            return (self.path / "trials.csv").stat().st_mtime_ns
        except OSError:
            return None

    @property
    def results(self):
        """The :class:`hpsearch.results.Results` behind this study (re-read when trials.csv changed)."""
        from hpsearch.results import open_results

        if self._mtime() != self._stamp:
            self._res, self._stamp = open_results(self.path), self._mtime()
        return self._res

    @property
    def name(self) -> str:
        return self.results.name

    @property
    def metric(self) -> str:
        """``val_accuracy`` (higher is better) or ``val_loss``."""
        return self.results.metric

    @property
    def params(self) -> list[str]:
        """The searched parameters (Optuna names: ``hidden_1``, ``lr`` …)."""
        return list(self.results.params)

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial, the columns of trials.csv with their real types (``Int64`` counts and widths,
        ``string`` text, ``float`` measurements; see :func:`hpsearch.read_trials`)."""
        from hpsearch.results import typed

        return typed(self.results.trials, self.results.scales)

    @property
    def curves(self) -> pd.DataFrame:
        """One row per trial and epoch: ``number, epoch, train_loss, train_accuracy, val_loss, val_accuracy``."""
        return self.results.curves.copy()

    def best(self, n: int = 10) -> pd.DataFrame:
        """The best ``n`` completed trials, best first (the ranking of the tables)."""
        from hpsearch.results import ranked

        return ranked(self.results.trials, self.metric).head(n).reset_index(drop=True)

    def worst(self, n: int = 10) -> pd.DataFrame:
        """The worst ``n`` completed trials, worst first."""
        from hpsearch.results import ranked

        return ranked(self.results.trials, self.metric, worst=True).head(n).reset_index(drop=True)

    def failed(self) -> pd.DataFrame:
        """Trials that failed, by number: a failure kind (``outcome``: overflow, nan, collapsed, dead,
        stalled), or an error of the trial process itself (state FAIL, ``fail_reason``)."""
        from hpsearch.results import failed_mask

        df = self.results.trials
        return df[failed_mask(df) | (df["state"] == "FAIL")].sort_values("number").reset_index(drop=True)

    def summary(self, top: int = 10, worst: int = 10) -> str:
        """The best / worst / diverged tables as ``run`` prints them."""
        from hpsearch.results import summary_text

        return summary_text(self.results.trials, metric=self.metric, params=self.params, top=top, worst=worst)

    def where(self, query: str) -> pd.DataFrame:
        """Trials matching a pandas query (``"lr > 0.1 and batch_size < 40"``; table headers work too)."""
        from hpsearch.results import where

        return where(self.results, query).reset_index(drop=True)

    def __repr__(self) -> str:
        return f"<hpsearch.Study {self.name!r} at {self.path}: {self.results.counts()}>"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))

    # ---------------------------------------------------------------- analyses
    def regions(self, params: list[str] | None = None, bins: int = 5, pair: tuple[str, str] | None = None) -> Regions:
        """Where training fails: what ``python -m hpsearch regions DIR`` prints, as an object."""
        from hpsearch.analysis import regions as rg

        res = self.results
        text = "\n".join(rg.report_lines(res, params=params, bins=bins, pair=pair))
        chosen = res.check_params(list(params)) if params else res.params
        data = rg.analysis(res, res.trials, chosen, bins)
        tables = {p: _bins_frame(rows) for p, rows in data["tables"].items()}
        rules = pd.DataFrame(data["rules"], columns=["rule", "trials", "failed"])
        rules["rate"] = rules["failed"] / rules["trials"]
        return Regions(tables, rules, data["edge"], data["kinds"], data, text)

    def narrow(self, top: float = 0.2, name: str | None = None) -> Narrowed:
        """A narrower space around the best ``top`` trials (a fraction, or a count), away from divergence."""
        from hpsearch.analysis.narrow import narrowed
        from hpsearch.space import load_space

        space_file = self.path / "space.toml"
        if not space_file.is_file():
            raise ResultsError(f"{self.path}: no space.toml, so there is no space to narrow")
        text, changes, k = narrowed(self.results, load_space(space_file), top, name)
        table = pd.DataFrame(
            [{"parameter": c.label, "before": c.before, "after": c.after, "note": c.note} for c in changes]
        )
        return Narrowed(text, table, k)

    def plot(self, what: str = "lr", other: str | None = None, *, top: int = 5):
        """A matplotlib Figure: the metric against parameter ``what``; or ``"pair"`` (``what``/``other``:
        two parameters), ``"history"``, ``"curves"`` (the best ``top``), ``"divergence"``.

        The ``plot`` command saves these same figures as PNG files.
        """
        return _shown(self._figure(what, other, top))

    def _figure(self, what, other, top):
        from hpsearch.analysis import plots

        res = self.results
        if what == "pair" or other is not None:
            a, b = (what, other) if other is not None else (plots._default_pair(res) or (None, None))
            if a is None:
                raise ResultsError(f"{self.path}: a pair plot needs two searched parameters")
            res.check_params([a, b], "plot")
            return plots.pair(res, a, b, None)
        if what == "history":
            return plots.history(res, None)
        if what == "curves":
            fig = plots.curves(res, top, None)
            if fig is None:
                raise ResultsError(f"{self.path}: no completed trial with a learning curve yet")
            return fig
        if what == "divergence":
            fig = plots.divergence(res, top, None)
            if fig is None:
                raise ResultsError(f"{self.path}: no diverged trial with a trace")
            return fig
        (param,) = res.check_params([what], "plot") if what != "hidden" else [None]
        if param is None:
            raise ResultsError("plot: name one layer (hidden_1, hidden_2 …), not 'hidden'")
        return plots.metric_vs_param(res, param, None)

    # ---------------------------------------------------------------- models
    def saved_models(self) -> list[int]:
        """Trial numbers whose model file the study kept (the top runs)."""
        folder = self.path / MODELS_DIR
        found = []
        for p in folder.glob("trial-*.npz") if folder.is_dir() else []:
            try:
                found.append(int(p.stem.removeprefix("trial-")))
            except ValueError:
                continue
        return sorted(found)

    def model(self, number: int | None = None) -> Model:
        """The trained model of trial ``number`` (default: the best) at its best epoch.

        The top runs' models are kept in ``models/`` (loading one takes milliseconds);
        any other completed trial is retrained from its seed (as long as the trial
        took), and the rebuilt model is checked against the validation value the
        trial recorded.
        """
        from hpsearch.model import load_model

        number = self._number(number)
        path = self.path / MODELS_DIR / model_file(number)
        if path.is_file():
            return load_model(path)
        from hpsearch.study.rebuild import rebuild

        return rebuild(self.path, number, storage=self.storage)

    def _number(self, number) -> int:
        df = self.results.trials
        if number is None:
            best = self.best(1)
            if best.empty:
                raise ResultsError(f"{self.path}: no completed trial, so no model ({self.results.counts()})")
            return int(best["number"].iloc[0])
        row = df[df["number"] == number]
        if row.empty:
            raise ResultsError(f"{self.path}: no trial {number} (trials 0–{int(df['number'].max())})")
        state = row["state"].iloc[0]
        if state != "COMPLETE":
            raise ResultsError(f"{self.path}: trial {number} is {state}, not COMPLETE: it has no trained model")
        return int(number)

    def data(self):
        """The study's data split as the trials saw it: ``(x_train, y_train, x_val, y_val, x_test, y_test)``,
        raw inputs (what ``Model.predict`` takes)."""
        from hpsearch.study.rebuild import prepared_data

        p = prepared_data(self.path)
        return p.x_train, p.y_train, p.x_val, p.y_val, p.x_test, p.y_test


def _shown(fig):
    """``fig``, made to show itself as a PNG in a notebook (these figures are not pyplot's, so IPython
    would otherwise print ``<Figure …>``)."""

    def png() -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    fig._repr_png_ = png
    return fig


def load_model(path) -> Model:
    """A model saved by ``Model.save`` or ``hpsearch export`` (NumPy only: no Optuna needed)."""
    from hpsearch.model import load_model as _load

    return _load(path)


__all__ = ["PLOTS", "HPSearchError", "Model", "Narrowed", "Regions", "Study", "load_model", "open", "run"]
