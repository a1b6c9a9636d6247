"""A session of ``run`` or ``worker``: set up the study, keep its trials running, score the best, stop cleanly."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from hpsearch import __version__, results
from hpsearch import data as datasets
from hpsearch.errors import HPSearchError, Interrupted, ResultsError, StorageError
from hpsearch.space import Space, parse_space, with_overrides
from hpsearch.study import _optuna, objective
from hpsearch.study import storage as stores
from hpsearch.study import supervisor as sup_
from hpsearch.study import trials as st
from hpsearch.study.report import Reporter
from hpsearch.study.samplers import make_pruner, make_sampler
from hpsearch.vocabulary import (
    ATTR_FINGERPRINT,
    ATTR_SETTINGS,
    ATTR_SOURCE,
    ATTR_SPACE,
    ATTR_TARGET,
    ATTR_TEST,
    JOURNAL_FILE,
    META_FILE,
    MODELS_DIR,
    SPACE_FILE,
    clip,
    model_file,
    study_name_problem,
)

SETTINGS_KEYS = ("dataset", "validation", "epochs", "metric", "seed", "sampler", "pruner")


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------- signals


class Signals:
    """Ctrl-C, SIGTERM and SIGHUP while a study runs: noted, acted on where it is safe.

    Outside ``deferred()`` a signal raises :class:`Interrupted` at once (set-up has
    computed nothing worth keeping). Inside, it is only noted: the trial loop and the
    test-set scoring poll ``received`` and stop cleanly, and the result files are
    written whatever arrives, and however often.
    """

    HANDLED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

    def __init__(self):
        self.received: list[int] = []
        self._defer = 0
        self._old: dict = {}

    def __enter__(self) -> Signals:
        self._old = {s: signal.signal(s, self._handle) for s in self.HANDLED}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)
        if not self._defer:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        self._defer += 1
        try:
            yield self
        finally:
            self._defer -= 1

    @property
    def exit_code(self) -> int:
        return 128 + (self.received[0] if self.received else signal.SIGINT)


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

    def options(self, jobs: int, trial_timeout: float | None) -> sup_.RunOptions:
        s = self.settings
        return sup_.RunOptions(
            jobs=jobs,
            epochs=s.epochs,
            metric=s.metric,
            seed=s.seed,
            prune=s.pruner != "none",
            trial_timeout=trial_timeout,
            storage_url=self.storage_url,
            models_dir=None if self.results_dir is None else self.results_dir / MODELS_DIR,
            study_name=s.name,
            patience=s.patience,
        )

    def about(self) -> list[str]:
        """What summary.md says the study is: its name, data set, space file, metric and space."""
        s = self.settings
        better = "higher" if s.direction == "maximize" else "lower"
        return [
            f"hpsearch study {s.name}",
            f"data set {self.dataset.describe()} · space file {self.space.source} · "
            f"metric {s.metric} ({better} is better) · {s.epochs} epochs · seed {s.seed}",
            f"space: {self.space.describe()}",
        ]

    @property
    def uses_journal(self) -> bool:
        return stores.is_journal(_optuna.storage(self.study))

    def export(self) -> results.pd.DataFrame:
        if self.results_dir is None:
            return results.trials_frame(self.study, self.space.param_names(), self.space.constants())
        try:
            return results.export(
                self.study,
                self.results_dir,
                param_order=self.space.param_names(),
                constants=self.space.constants(),
                metric=self.settings.metric,
                about=self.about(),
            )
        except OSError as exc:  # a full disk: the files stay as they were, the storage holds every result
            raise StorageError(stores.write_failed(self.results_dir, exc)) from None


def _settings_dict(settings) -> dict:
    """The settings that make a study what it is; ``patience`` only when set, so older studies still match."""
    out = {k: getattr(settings, k) for k in SETTINGS_KEYS}
    if settings.patience:
        out["patience"] = settings.patience
    return out


def _identity(space: Space, settings) -> dict:
    """What makes two runs the same study: every parameter as written and the study settings."""
    return {"v": 2, **space.identity(), **_settings_dict(settings)}


def _fingerprint(space: Space, settings) -> str:
    return json.dumps(_identity(space, settings), sort_keys=True, default=str)


def _legacy_fingerprint(space: Space, settings) -> str:
    """The fingerprint hpsearch 0.1 stored, so its studies resume."""
    return json.dumps(
        {"space": space.describe(), "constants": space.constants(), **_settings_dict(settings)},
        sort_keys=True,
        default=str,
    )


def _difference(stored: str | None, space: Space, settings) -> str | None:
    """How the stored study differs from this space and settings (``epochs 20 → 3, …``), or None."""
    if stored is None or stored in (_fingerprint(space, settings), _legacy_fingerprint(space, settings)):
        return None
    try:
        old = json.loads(stored)
    except ValueError:
        return "its stored fingerprint is unreadable"
    new = json.loads(_fingerprint(space, settings) if "v" in old else _legacy_fingerprint(space, settings))
    show = lambda v: "(absent)" if v is None else (v if isinstance(v, str) else json.dumps(v))  # noqa: E731
    defaults = {"patience": 0}  # settings stored only when not their default
    old, new = {**defaults, **old}, {**defaults, **new}
    diffs = [
        f"{k} {show(old.get(k))} → {show(new.get(k))}"
        for k in sorted(set(old) | set(new))
        if k != "v" and old.get(k) != new.get(k)
    ]
    return clip(", ".join(diffs) or "the stored fingerprint differs", 400)


def _check_batch_size(space: Space, prepared: objective.Prepared) -> None:
    n = len(prepared.y_train)
    high = space.max_value("batch_size")
    if high is not None and high > n:
        raise HPSearchError(
            f"{space.source}: params.batch_size: can reach {high}, "
            f"larger than the {n} training examples of this data set"
        )


def _load_data(settings, root: Path | None):
    dataset = datasets.load(settings.dataset, root=root)
    prepared = objective.prepare(dataset, settings.validation, settings.seed)
    return dataset, prepared


def _check_name(name: str, where: str) -> None:
    problem = study_name_problem(name)
    if problem:
        raise HPSearchError(f"{where}: {problem}")


def setup_run(space: Space, overrides: dict, *, out: Path, storage_url: str | None, n_trials: int) -> Context:
    """Validate everything, then create or resume the study and queue its trials.

    Nothing is written before every check has passed, and a results directory this
    call created is removed again if the set-up fails.
    """
    if overrides.get("name") is not None:
        _check_name(overrides["name"], "--name")
    settings = with_overrides(space.study, overrides)
    if n_trials < 1:
        raise HPSearchError(f"--trials must be at least 1, got {n_trials}")
    results_dir = Path(out) / settings.name
    # a path written in the file is relative to the file; one given on the command line, to the cwd
    in_file = overrides.get("dataset") is None and space.source != "<string>"
    dataset, prepared = _load_data(settings, Path(space.source).parent if in_file else None)
    _check_batch_size(space, prepared)
    meta = results.read_meta(results_dir)
    diff = _difference(meta.get("fingerprint"), space, settings)
    if diff:
        raise ResultsError(
            f"{results_dir} holds study {meta.get('name', settings.name)!r} of a different space or settings "
            f"({diff}); use --name NEW (or --out DIR) to start fresh, or delete {results_dir} to discard it"
        )
    created = not results_dir.exists()
    # a database is opened before anything is written: an unreachable one leaves no empty directory
    storage = None if storage_url is None else st.open_storage(storage_url, results_dir)
    try:
        sup_.check_writable(results_dir)
        if storage is None:
            storage = st.open_storage(None, results_dir)
        study = _create_or_resume(space, settings, storage, storage_url, results_dir, n_trials)
        if not (results_dir / SPACE_FILE).exists():
            results.atomic_write(results_dir / SPACE_FILE, space.text)
        results.atomic_write(
            results_dir / META_FILE,
            json.dumps(
                {
                    "name": settings.name,
                    "fingerprint": _fingerprint(space, settings),
                    "metric": settings.metric,
                    "direction": settings.direction,
                    "params": space.param_names(),
                    "scales": {p: space.scale(p) for p in space.param_names()},
                    "constants": space.constants(),
                    "dataset": dataset.describe(),
                    "storage": stores.mask_url(storage_url) or "journal",
                    **_settings_dict(settings),
                },
                indent=2,
                default=str,
            ),
        )
    except BaseException:
        if created:
            _remove_if_empty(results_dir)
        raise
    return Context(space, settings, results_dir, storage_url, study, dataset, prepared)


def _create_or_resume(space, settings, storage, storage_url, results_dir: Path, n_trials: int) -> optuna.Study:
    with sup_.directory_lock(results_dir):
        study = optuna.create_study(
            study_name=settings.name,
            storage=storage,
            direction=settings.direction,
            load_if_exists=True,
            sampler=make_sampler(settings.sampler, settings.seed),
            pruner=make_pruner(settings.pruner, settings.epochs),
        )
        existing = study.user_attrs.get(ATTR_FINGERPRINT)
        diff = _difference(existing, space, settings)
        if diff:
            raise ResultsError(
                f"study {settings.name!r} in {stores.mask_url(storage_url) or results_dir} was run with a different "
                f"space or settings ({diff}); use --name NEW to start fresh"
            )
        if existing is None:
            study.set_user_attr(ATTR_SPACE, space.text)
            study.set_user_attr(ATTR_SOURCE, str(space.source))
            study.set_user_attr(ATTR_SETTINGS, _settings_dict(settings))
            study.set_user_attr(ATTR_FINGERPRINT, _fingerprint(space, settings))
            study.set_metric_names([settings.metric])  # how optuna-dashboard names the objective
        done = st.finished_configurations(study)
        if n_trials < done:
            raise HPSearchError(
                f"study {settings.name!r} already has {done} finished trials, more than the {n_trials} asked for; "
                f"nothing to run (see them with: python -m hpsearch show {results_dir}; "
                f"extend the study with --trials {done + 1} or more)"
            )
        st.fail_stale_trials(study, results_dir / st.WORKERS_DIR if stores.is_journal(storage) else None)
        st.top_up(study, n_trials)
    return study


def _remove_if_empty(results_dir: Path) -> None:
    """Undo a results directory this set-up created, unless a record was written into it."""
    journal = results_dir / JOURNAL_FILE
    if journal.exists() and journal.stat().st_size > 0:
        return
    shutil.rmtree(results_dir, ignore_errors=True)


def setup_worker(storage_url: str, study_name: str, out: Path | None) -> Context:
    """Join a study from its storage alone: the space and settings are stored with it."""
    results_dir = None
    journal = stores.journal_path(storage_url)
    if journal is not None:
        if not journal.is_file():
            raise HPSearchError(f"{journal}: no such journal file")
        results_dir = journal.parent
    elif out is not None:
        _check_name(study_name, "--study")
    storage = st.open_storage(storage_url, results_dir or Path("."))
    try:
        summaries = optuna.get_all_study_names(storage)
    except Exception as exc:  # driver errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HPSearchError(
            f"cannot read studies from {stores.mask_url(storage_url)!r}: {stores.mask_text(first, storage_url)}"
        ) from None
    if study_name not in summaries:
        hint = f" (studies there: {', '.join(summaries)})" if summaries else " (it holds no study)"
        raise HPSearchError(f"no study {study_name!r} in {stores.mask_url(storage_url)!r}{hint}")
    probe = optuna.load_study(study_name=study_name, storage=storage)
    text = probe.user_attrs.get(ATTR_SPACE)
    if text is None:
        raise HPSearchError(f"study {study_name!r} was not created by hpsearch run (no space stored with it)")
    space = parse_space(text, source=probe.user_attrs.get(ATTR_SOURCE, "<stored>"))
    settings = dataclasses.replace(space.study, name=study_name, **probe.user_attrs.get(ATTR_SETTINGS, {}))
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=make_sampler(settings.sampler, settings.seed),
        pruner=make_pruner(settings.pruner, settings.epochs),
    )
    dataset, prepared = _load_data(settings, None)
    if out is not None and results_dir is None:
        results_dir = Path(out) / study_name
    return Context(space, settings, results_dir, storage_url, study, dataset, prepared)


# ---------------------------------------------------------------- running


def work(
    ctx: Context,
    jobs: int,
    trial_timeout: float | None,
    reporter: Reporter,
    signals: Signals,
    total: int | None = None,
    export_every: float = 5.0,
) -> bool:
    """Run trials until the study has none left; False when a signal stopped it.

    A :class:`StorageError` (a full disk, a database gone for too long) stops every
    trial process and propagates; the trials it leaves RUNNING are queued again
    by the next run.
    """
    storage = _optuna.storage(ctx.study)
    if isinstance(storage, stores.RetryingStorage):
        storage.on_wait = storage.on_back = lambda m: reporter.say(f"  {m}")
    sup = sup_.Supervisor(
        ctx.study,
        ctx.space,
        ctx.prepared,
        ctx.options(jobs, trial_timeout),
        ctx.results_dir if ctx.uses_journal else None,
    )
    last_export = time.monotonic()
    last_progress = 0.0
    try:
        with threadpool_limits(1), signals.deferred():  # one BLAS thread per trial process: the cores are the workers
            going = True
            while going and not signals.received:
                going, events = sup.step()
                for e in events:
                    reporter.say(f"  {e}")
                if signals.received:
                    sup.stop()
                    break
                now = time.monotonic()
                if now - last_progress >= 0.5 or not going:  # each count reads every trial: not on every poll
                    reporter.progress(sup_.progress(ctx.study, total or _total(ctx.study)))
                    last_progress = now
                if ctx.results_dir is not None and time.monotonic() - last_export > export_every:
                    ctx.export()
                    last_export = time.monotonic()
    finally:
        with signals.deferred():
            stopped = sup.interrupt() if sup.running else []
            sup.close()
            reporter.end_progress()
    if signals.received:
        if stopped:
            reporter.say(f"Interrupted: trials {', '.join(map(str, stopped))} were stopped and queued again.")
        return False
    return True


def run_study(
    ctx: Context, jobs: int, trial_timeout: float | None, reporter: Reporter, signals: Signals, total: int
) -> tuple[bool, results.pd.DataFrame]:
    """What ``run`` does after set-up, for the command line and the library alike: the header, the
    trials, the test scores of the best, and the result files, written on every way out.

    Returns (finished without a signal, the trials frame). A storage that failed (a full
    disk, a database gone for too long) raises one :class:`StorageError` after the files
    were written as far as they could be; the storage keeps every finished trial.
    """
    for line in header(ctx, jobs):
        reporter.say(line)
    for warning in ctx.space.warnings():
        reporter.say(f"warning: {warning}")
    done_before = st.effective_trials(ctx.study)["finished"]
    if done_before:
        reporter.say(f"resuming: {done_before} of {total} trials already finished")
    reporter.say()
    failure = None
    finished = False
    try:
        finished = work(ctx, jobs, trial_timeout, reporter, signals, total=total)
        if finished:
            for note in score_top(ctx, ctx.settings.test_top, jobs, signals):
                reporter.say(f"note: {note}")
    except StorageError as exc:
        failure = exc
    try:
        df = ctx.export()
    except StorageError as exc:  # the disk is full: the storage still holds every result
        failure = failure or exc
        df = None
    if failure is not None:
        raise failure
    return finished and not signals.received, df


def _total(study: optuna.Study) -> int:
    c = st.effective_trials(study)
    target = study.user_attrs.get(ATTR_TARGET)
    return int(target) if target is not None else c["finished"] + c["RUNNING"] + c["WAITING"]


def _score_one(args):
    cfg, prepared, epochs, metric, seed, keep = args
    with threadpool_limits(1):
        return objective.test_score(cfg, prepared, epochs=epochs, metric=metric, seed=seed, keep=keep)


def _saved_score(path: Path, prepared: objective.Prepared, metric: str) -> dict | None:
    """Test (and validation) scores of a saved model, or None when there is no readable file."""
    from hpsearch.model import load_model

    if not path.is_file():
        return None
    try:
        model = load_model(path)
    except HPSearchError:
        return None
    with threadpool_limits(1):  # small products: BLAS threads only wait on each other
        test = model.evaluate(prepared.x_test, prepared.y_test)
        val = model.evaluate(prepared.x_val, prepared.y_val)
    return {
        "test_accuracy": test["accuracy"],
        "test_loss": objective._finite_or_none(test["loss"]),
        "val": objective._finite_or_none(val[metric.removeprefix("val_")]),
    }


def ranked_complete(study: optuna.Study) -> list:
    """COMPLETE trials with a value, best first (ties: lower number first)."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials.sort(key=lambda t: (-t.value if reverse else t.value, t.number))
    return trials


def score_top(ctx: Context, k: int, jobs: int, signals: Signals | None = None) -> list[str]:
    """Test-set scores for the best ``k`` completed trials, from the models their trials saved.

    A completed trial saves its best-epoch model in ``models/``; scoring loads it
    (milliseconds). A top trial without a file (run by a worker on another machine,
    or before models were kept) is retrained from its seed in a forked process, and
    its model saved then. Each score is stored as it arrives; a signal stops the
    retraining at once and the scores so far are kept. At the end only the top
    ``max(k, 1)`` model files are kept; any other trial is rebuilt on demand.
    """
    if ctx.prepared.x_test is None:
        return []
    trials = ranked_complete(ctx.study)
    scores = dict(ctx.study.user_attrs.get(ATTR_TEST, {}))
    todo = [t for t in trials[:k] if str(t.number) not in scores]
    notes = []
    models = ctx.results_dir / MODELS_DIR if ctx.results_dir is not None else None
    s = ctx.settings
    retrain = []
    for t in todo:
        r = _saved_score(models / model_file(t.number), ctx.prepared, s.metric) if models is not None else None
        if r is None:
            retrain.append(t)
            continue
        notes += _check_val(t, r, "its saved model")
        scores[str(t.number)] = r
        ctx.study.set_user_attr(ATTR_TEST, scores)
    items = []
    for t in retrain:
        cfg, seed = ctx.space.suggest(optuna.trial.FixedTrial(t.params, t.number)), t.user_attrs["seed"]
        keep = None if models is None else sup_.keeper(t.number, cfg, seed, ctx.prepared, ctx.options(1, None))
        items.append((cfg, ctx.prepared, t.user_attrs.get("best_epoch") or s.epochs, s.metric, seed, keep))
    stop = (lambda: bool(signals.received)) if signals is not None else (lambda: False)
    for i, r in sup_.fork_map(_score_one, items, max(1, min(jobs, len(items))), stop, name="hpsearch-score"):
        t = retrain[i]
        if isinstance(r, BaseException):
            notes.append(f"trial {t.number}: no test score ({sup_.one_line(r)})")
            continue
        notes += _check_val(t, r, "retraining")
        scores[str(t.number)] = r
        ctx.study.set_user_attr(ATTR_TEST, scores)
    if models is not None and not (signals is not None and signals.received):
        prune_models(models, {t.number for t in trials[: max(k, 1)]})
    return notes


def _check_val(t, r: dict, how: str) -> list[str]:
    if r["val"] is None or abs(r["val"] - t.value) > 1e-6:
        return [f"trial {t.number}: {how} gave {r['val']} instead of {t.value}; test score kept anyway"]
    return []


def prune_models(models: Path, keep: set[int]) -> None:
    """Delete the saved models of trials not in ``keep`` (they are rebuilt on demand)."""
    if not models.is_dir():
        return
    for path in models.glob("trial-*.npz"):
        try:
            number = int(path.stem.removeprefix("trial-"))
        except ValueError:
            continue
        if number not in keep:
            path.unlink(missing_ok=True)


def header(ctx: Context, jobs: int) -> list[str]:
    s = ctx.settings
    p = ctx.prepared
    test = f" / {len(p.y_test):,} test" if p.y_test is not None else ""
    where = stores.mask_url(ctx.storage_url) or f"{ctx.results_dir}/"
    return [
        f"hpsearch {__version__} · study {s.name} · dataset {ctx.dataset.name} "
        f"({len(p.y_train):,} train / {len(p.y_val):,} val{test})",
        f"space: {ctx.space.describe()}",
        f"sampler {s.sampler} (seed {s.seed}) · pruner {s.pruner} · {s.epochs} epoch{'s' if s.epochs != 1 else ''}"
        f"{f' (patience {s.patience})' if s.patience else ''}"
        f" · {jobs} worker{'s' if jobs != 1 else ''} · storage {where}",
    ]
