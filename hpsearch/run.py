"""``hpsearch run`` and ``hpsearch worker``: set up a study, keep its trials running, report."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import optuna
from joblib import Parallel, delayed
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from hpsearch import __version__, objective, results, study as st
from hpsearch import data as datasets
from hpsearch.errors import HPSearchError, ResultsError
from hpsearch.space import Space, parse_space

SETTINGS_KEYS = ("dataset", "validation", "epochs", "metric", "seed", "sampler", "pruner")


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Reporter:
    """Progress on the terminal: one rewritten line on a TTY, a line per tenth otherwise."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()
        self._last_tenth = -1
        self._start_finished = None
        self._width = 0
        self._line = ""

    def say(self, text: str = "") -> None:
        if not self.quiet:
            self._clear()
            print(text, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def progress(self, p: st.Progress) -> None:
        if self.quiet:
            return
        if self._start_finished is None:
            self._start_finished = p.finished
        elapsed = time.monotonic() - self.t0
        done_here = p.finished - self._start_finished
        left = ""
        if done_here > 0 and p.total > p.finished:
            left = f" · ~{_clock(elapsed / done_here * (p.total - p.finished))} left"
        best = f"best {p.best:.4f} (#{p.best_number})" if p.best is not None else "best —"
        frac = p.finished / p.total if p.total else 1.0
        bar_w = 30
        full = int(frac * bar_w)
        bar = "━" * full + ("╸" if full < bar_w else "") + " " * max(0, bar_w - full - 1)
        extra = f" · failed {p.failed}" if p.failed else ""
        line = (f" {p.finished:>{len(str(p.total))}}/{p.total} {bar}  {best} · diverged {p.diverged}{extra}"
                f" · {_clock(elapsed)} elapsed{left}")
        if self.tty:
            if line == self._line:
                return
            self._line = line
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
        else:
            tenth = int(frac * 10)
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                print(line, file=self.stream, flush=True)

    def end_progress(self) -> None:
        if self.tty and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ---------------------------------------------------------------- study set-up


@dataclasses.dataclass
class Context:
    """Everything a run or a worker needs about one study."""

    space: Space
    settings: object  # StudySettings with overrides applied
    results_dir: Path | None
    storage_url: str | None
    study: optuna.Study
    dataset: datasets.Dataset
    prepared: objective.Prepared

    def options(self, jobs: int, trial_timeout: float | None) -> st.RunOptions:
        s = self.settings
        return st.RunOptions(jobs=jobs, epochs=s.epochs, metric=s.metric, seed=s.seed,
                             prune=s.pruner != "none", trial_timeout=trial_timeout,
                             storage_url=self.storage_url)

    def export(self) -> results.pd.DataFrame:
        if self.results_dir is None:
            return results.trials_frame(self.study, self.space.param_names(), self.space.constants())
        return results.export(self.study, self.results_dir, param_order=self.space.param_names(),
                              constants=self.space.constants(), metric=self.settings.metric,
                              header=f"hpsearch study {self.settings.name}")


def _settings_dict(settings) -> dict:
    return {k: getattr(settings, k) for k in SETTINGS_KEYS}


def _fingerprint(space: Space, settings) -> str:
    return json.dumps({"space": space.describe(), "constants": space.constants(), **_settings_dict(settings)},
                      sort_keys=True, default=str)


def _check_batch_size(space: Space, prepared: objective.Prepared) -> None:
    n = len(prepared.y_train)
    high = space.max_value("batch_size") if hasattr(space, "max_value") else None
    if high is not None and high > n:
        raise HPSearchError(
            f"{space.source}: params.batch_size: can reach {high}, "
            f"larger than the {n} training examples of this data set"
        )


def _load_data(settings, root: Path | None):
    dataset = datasets.load(settings.dataset, root=root)
    prepared = objective.prepare(dataset, settings.validation, settings.seed)
    return dataset, prepared


def setup_run(space: Space, overrides: dict, *, out: Path, storage_url: str | None, n_trials: int) -> Context:
    """Validate everything, then create or resume the study and queue its trials."""
    settings = dataclasses.replace(space.study, **{k: v for k, v in overrides.items() if v is not None})
    if n_trials < 1:
        raise HPSearchError(f"--trials must be at least 1, got {n_trials}")
    results_dir = Path(out) / settings.name
    # a path written in the file is relative to the file; one given on the command line, to the cwd
    in_file = overrides.get("dataset") is None and space.source != "<string>"
    dataset, prepared = _load_data(settings, Path(space.source).parent if in_file else None)
    _check_batch_size(space, prepared)
    st.check_writable(results_dir)
    fp = _fingerprint(space, settings)
    saved = results_dir / "space.toml"
    meta = results.read_meta(results_dir)
    if meta.get("fingerprint") not in (None, fp):
        raise ResultsError(
            f"{results_dir} holds study {meta.get('name', settings.name)!r} of a different space or settings; "
            f"use --name NEW (or --out DIR) to start fresh, or delete {results_dir} to discard it"
        )
    storage = st.open_storage(storage_url, results_dir)
    direction = "maximize" if settings.metric == "val_accuracy" else "minimize"
    with st.directory_lock(results_dir):
        study = optuna.create_study(
            study_name=settings.name, storage=storage, direction=direction, load_if_exists=True,
            sampler=st.make_sampler(settings.sampler, settings.seed),
            pruner=st.make_pruner(settings.pruner, settings.epochs),
        )
        existing = study.user_attrs.get(st.ATTR_FINGERPRINT)
        if existing is None:
            study.set_user_attr(st.ATTR_SPACE, space.text)
            study.set_user_attr(st.ATTR_SOURCE, str(space.source))
            study.set_user_attr(st.ATTR_SETTINGS, _settings_dict(settings))
            study.set_user_attr(st.ATTR_FINGERPRINT, fp)
        elif existing != fp:
            raise ResultsError(
                f"study {settings.name!r} in {storage_url or results_dir} was run with a different space or settings; "
                f"use --name NEW to start fresh"
            )
        st.fail_stale_trials(study)
        st.top_up(study, n_trials)
    if not saved.exists():
        results.atomic_write(saved, space.text)
    results.atomic_write(results_dir / "meta.json", json.dumps({
        "name": settings.name, "fingerprint": fp, "metric": settings.metric, "direction": direction,
        "params": space.param_names(), "scales": {p: space.scale(p) for p in space.param_names()},
        "constants": space.constants(), "dataset": dataset.describe(), "storage": storage_url or "journal",
        **_settings_dict(settings),
    }, indent=2, default=str))
    return Context(space, settings, results_dir, storage_url, study, dataset, prepared)


def setup_worker(storage_url: str, study_name: str, out: Path | None) -> Context:
    """Join a study from its storage alone: the space and settings are stored with it."""
    results_dir = None
    if storage_url.startswith("journal:"):
        results_dir = Path(storage_url[len("journal:"):]).parent
    storage = st.open_storage(storage_url, results_dir or Path("."))
    try:
        summaries = optuna.get_all_study_names(storage)
    except Exception as exc:  # driver errors
        raise HPSearchError(f"cannot read studies from {storage_url!r}: {str(exc).splitlines()[0]}") from None
    if study_name not in summaries:
        hint = f" (studies there: {', '.join(summaries)})" if summaries else " (it holds no study)"
        raise HPSearchError(f"no study {study_name!r} in {storage_url!r}{hint}")
    probe = optuna.load_study(study_name=study_name, storage=storage)
    text = probe.user_attrs.get(st.ATTR_SPACE)
    if text is None:
        raise HPSearchError(f"study {study_name!r} was not created by hpsearch run (no space stored with it)")
    space = parse_space(text, source=probe.user_attrs.get(st.ATTR_SOURCE, "<stored>"))
    settings = dataclasses.replace(space.study, name=study_name, **probe.user_attrs.get(st.ATTR_SETTINGS, {}))
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=st.make_sampler(settings.sampler, settings.seed),
                              pruner=st.make_pruner(settings.pruner, settings.epochs))
    dataset, prepared = _load_data(settings, None)
    if out is not None and results_dir is None:
        results_dir = Path(out) / study_name
    return Context(space, settings, results_dir, storage_url, study, dataset, prepared)


# ---------------------------------------------------------------- running


def work(ctx: Context, jobs: int, trial_timeout: float | None, reporter: Reporter, total: int | None = None,
         export_every: float = 5.0) -> bool:
    """Run trials until the study has none left; False when interrupted by Ctrl-C / SIGTERM."""
    sup = st.Supervisor(ctx.study, ctx.space, ctx.prepared, ctx.options(jobs, trial_timeout),
                        ctx.results_dir if ctx.storage_url is None or ctx.storage_url.startswith("journal:") else None)
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)
        sup.stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    last_export = time.monotonic()
    last_progress = 0.0
    try:
        with threadpool_limits(1):  # one BLAS thread per trial process: the cores are the workers
            going = True
            while going:
                going, events = sup.step()
                for e in events:
                    reporter.say(f"  {e}")
                if interrupted:
                    break
                now = time.monotonic()
                if now - last_progress >= 0.5 or not going:  # each count reads every trial: not on every poll
                    reporter.progress(st.progress(ctx.study, total or _total(ctx.study)))
                    last_progress = now
                if ctx.results_dir is not None and time.monotonic() - last_export > export_every:
                    ctx.export()
                    last_export = time.monotonic()
    finally:
        stopped = sup.interrupt() if interrupted else []
        sup.close()
        for s, h in old.items():
            signal.signal(s, h)
        reporter.end_progress()
    if interrupted:
        if stopped:
            reporter.say(f"Interrupted: trials {', '.join(map(str, stopped))} were stopped and queued again.")
        return False
    return True


def _total(study: optuna.Study) -> int:
    c = st.effective_trials(study)
    return c["finished"] + c["RUNNING"] + c["WAITING"]


def score_top(ctx: Context, k: int, jobs: int) -> list[str]:
    """Test-set scores for the best ``k`` completed trials (retrained in parallel with joblib)."""
    if k <= 0 or ctx.prepared.x_test is None:
        return []
    trials = [t for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    reverse = ctx.study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials.sort(key=lambda t: (-t.value if reverse else t.value, t.number))
    scores = dict(ctx.study.user_attrs.get(st.ATTR_TEST, {}))
    todo = [t for t in trials[:k] if str(t.number) not in scores]
    if not todo:
        return []
    s = ctx.settings
    configs = [ctx.space.suggest(optuna.trial.FixedTrial(t.params, t.number)) for t in todo]
    with threadpool_limits(1):
        out = Parallel(n_jobs=min(jobs, len(todo)), inner_max_num_threads=1)(
            delayed(objective.test_score)(cfg, ctx.prepared, epochs=t.user_attrs.get("best_epoch") or s.epochs,
                                          metric=s.metric, seed=t.user_attrs["seed"])
            for cfg, t in zip(configs, todo)
        )
    notes = []
    for t, r in zip(todo, out):
        if r["val"] is None or abs(r["val"] - t.value) > 1e-6:
            notes.append(f"trial {t.number}: retraining gave {r['val']} instead of {t.value}; test score kept anyway")
        scores[str(t.number)] = r
    ctx.study.set_user_attr(st.ATTR_TEST, scores)
    return notes


def header(ctx: Context, jobs: int) -> list[str]:
    s = ctx.settings
    p = ctx.prepared
    test = f" / {len(p.y_test):,} test" if p.y_test is not None else ""
    where = ctx.storage_url or f"{ctx.results_dir}/"
    return [
        f"hpsearch {__version__} · study {s.name} · dataset {ctx.dataset.name} "
        f"({len(p.y_train):,} train / {len(p.y_val):,} val{test})",
        f"space: {ctx.space.describe()}",
        f"sampler {s.sampler} (seed {s.seed}) · pruner {s.pruner} · {s.epochs} epochs · {jobs} worker"
        f"{'s' if jobs != 1 else ''} · storage {where}",
    ]
