"""The study layer: Optuna study, sampler, pruner and storage; trials run in child processes.

How trials run
--------------
A study holds exactly as many trials as asked for: ``run`` adds the missing ones
as WAITING trials, and every worker *claims* a waiting trial (an atomic
WAITING→RUNNING change in the storage, as Optuna's own trial queue does). So
trials finish exactly once each, whether one process works on the study or
several machines do, and nothing is ever counted twice.

A worker is a supervisor: it keeps up to ``jobs`` trials running, each in a
process forked for that trial alone. The data are loaded once, before the
fork, and shared copy-on-write. A trial that segfaults, runs out of memory,
calls ``os._exit`` or overruns ``--trial-timeout`` costs that trial only: the
supervisor sees the exit status, records the trial as FAIL with the cause, and
goes on. (A pool such as joblib's cannot tell which call killed a worker and
breaks as a whole; joblib runs the final test-set retraining instead.)

A killed worker leaves RUNNING trials behind. Each worker holds an ``flock`` on
a file of its own while it lives; a RUNNING trial whose worker's lock can be
taken is stale. On a database storage Optuna's heartbeat does the same across
machines. Stale trials become FAIL (reason ``interrupted``) and their
configuration is queued again (Optuna's ``RetryHeartbeatStaleTrialCallback``).

Determinism
-----------
The default sampler draws every parameter from a generator seeded by (study
seed, trial number, parameter name), and training is seeded by (study seed,
trial number), so the configurations and their scores do not depend on
``--jobs`` or on timing.
"""

from __future__ import annotations

import errno
import faulthandler
import fcntl
import multiprocessing
import os
import signal
import socket
import time
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpsearch import objective
from hpsearch.errors import HPSearchError, ResultsError

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
JOURNAL_FILE = "optuna-journal.log"
WORKERS_DIR = "workers"
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 10
SAMPLERS = ("random", "tpe", "qmc")
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
PRUNERS = ("none", "median", "hyperband")

# Study user attributes: what a worker on another machine needs to join.
ATTR_SPACE = "space_toml"
ATTR_SOURCE = "space_source"
ATTR_FINGERPRINT = "fingerprint"
ATTR_SETTINGS = "settings"
ATTR_TEST = "test_scores"


class TrialSeededSampler(optuna.samplers.RandomSampler):
    """Random / log-uniform sampling where each draw depends only on (seed, trial number, name).

    Optuna's ``RandomSampler`` draws from one stream, so which trial gets which
    configuration depends on the order trials start in. Reseeding per draw makes
    trial *k* the same configuration whatever the number of workers.
    """

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)
        self._base_seed = int(seed)

    def sample_independent(self, study, trial, param_name, param_distribution):
        # a re-run of an interrupted trial draws what the original would have drawn
        number = trial.system_attrs.get("failed_trial", trial.number)
        key = f"{self._base_seed}:{number}:{param_name}".encode()
        self._rng.rng.seed(zlib.crc32(key))
        return super().sample_independent(study, trial, param_name, param_distribution)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return TrialSeededSampler(seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    raise HPSearchError(f"unknown sampler {name!r} (allowed: {', '.join(SAMPLERS)})")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 5))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    raise HPSearchError(f"unknown pruner {name!r} (allowed: {', '.join(PRUNERS)})")


def open_storage(url: str | None, results_dir: Path) -> optuna.storages.BaseStorage:
    """The embedded journal file under ``results_dir`` by default, else any Optuna storage URL.

    The journal file is Optuna's recommendation for several processes on one
    machine (no "database is locked"); an RDB URL (PostgreSQL, MySQL) serves many
    machines and gets Optuna's heartbeat so that a dead machine's trials are retried.
    """
    if url is None:
        results_dir.mkdir(parents=True, exist_ok=True)
        return _journal(results_dir / JOURNAL_FILE)
    if url.startswith("journal:"):
        return _journal(Path(url[len("journal:") :]))
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
        )
    except Exception as exc:  # sqlalchemy / driver errors: name the URL, not the stack
        raise HPSearchError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}") from None


def _journal(path: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=_FlockLock(str(path))))


class _FlockLock:
    """The journal's write lock as an ``flock``: the kernel drops it when its holder dies.

    Optuna's file locks (a lock file or symlink that must be removed) outlive a
    process killed with -9 while writing, and every other process then waits out
    a 30 s grace period; an flock cannot be left behind.
    """

    def __init__(self, path: str):
        self._path = path + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def uses_heartbeat(storage) -> bool:
    """True for an RDB storage opened with a heartbeat interval (what Optuna's stale-trial check needs)."""
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None


# ---------------------------------------------------------------- trial accounting


def effective_trials(study: optuna.Study) -> dict[str, int]:
    """Counts by state, where a FAIL that was queued again (interrupted) does not count as finished."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0, "retried": 0}
    for t in trials:
        if t.state == TrialState.FAIL and t.number in retried:
            counts["retried"] += 1
        else:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
    counts["finished"] = counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]
    return counts


def top_up(study: optuna.Study, n_trials: int) -> int:
    """Queue WAITING trials so that finished + running + waiting == n_trials; returns how many were added."""
    c = effective_trials(study)
    missing = n_trials - (c["finished"] + c["RUNNING"] + c["WAITING"])
    for _ in range(max(0, missing)):
        study.enqueue_trial({}, skip_if_exists=False)
    return max(0, missing)


def claim(study: optuna.Study) -> int | None:
    """Atomically move one WAITING trial to RUNNING; its id, or None when none is left."""
    storage = study._storage
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return t._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def mark_failed(study: optuna.Study, trial_id: int, reason: str, *, retry: bool) -> bool:
    """RUNNING → FAIL with ``fail_reason``; queue the configuration again if ``retry``."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another worker got there first
    if retry:
        RetryHeartbeatStaleTrialCallback(max_retry=2)(study, storage.get_trial(trial_id))
    return True


# ---------------------------------------------------------------- worker liveness


class WorkerLock:
    """An ``flock`` held for the life of a worker process; the kernel drops it when the process dies."""

    def __init__(self, results_dir: Path):
        d = results_dir / WORKERS_DIR
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.unlink(missing_ok=True)


def _lock_is_dead(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    finally:
        os.close(fd)
    Path(path).unlink(missing_ok=True)
    return True


def fail_stale_trials(study: optuna.Study) -> int:
    """Fail (and queue again) RUNNING trials whose worker is gone; returns how many."""
    if uses_heartbeat(study._storage):
        before = effective_trials(study)["retried"]
        optuna.storages.fail_stale_trials(study)
        return effective_trials(study)["retried"] - before
    n = 0
    for t in study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        lock = t.system_attrs.get("hpsearch:worker")
        if lock is None:
            # claimed but killed before the worker could sign it: stale after a grace period
            started = t.datetime_start.timestamp() if t.datetime_start else time.time()
            dead = time.time() - started > 60
        else:
            dead = Path(lock).parent.exists() and _lock_is_dead(lock)
        if dead and mark_failed(study, t._trial_id, "interrupted: its worker process is gone", retry=True):
            n += 1
    return n


# ---------------------------------------------------------------- the supervisor


@dataclass
class RunOptions:
    jobs: int
    epochs: int
    metric: str
    seed: int
    prune: bool
    trial_timeout: float | None = None
    storage_url: str | None = None


@dataclass
class _Running:
    trial_id: int
    number: int
    process: multiprocessing.Process
    started: float


@dataclass
class Progress:
    """What the supervisor tells its caller after every poll."""

    finished: int = 0
    total: int = 0
    diverged: int = 0
    failed: int = 0
    best: float | None = None
    best_number: int | None = None
    running: int = 0
    events: list[str] = field(default_factory=list)


def _set_pdeathsig() -> None:
    """Linux: the trial process dies with its supervisor (a killed run leaves no orphans)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _child_main(trial: optuna.Trial, config: dict, seed: int, prepared, opts: RunOptions) -> None:
    """Body of a trial process: train the configuration and tell the study. Exit status 0 means told."""
    _set_pdeathsig()
    faulthandler.disable()  # a crash is reported once, by the supervisor, as the trial's fail_reason
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    study = trial.study
    if opts.storage_url is not None and not isinstance(study._storage, optuna.storages.JournalStorage):
        # never share a database connection across a fork
        storage = optuna.storages.RDBStorage(opts.storage_url, skip_compatibility_check=True)
        study = optuna.load_study(study_name=study.study_name, storage=storage,
                                  sampler=study.sampler, pruner=study.pruner)
        # Optuna's cache maps trial ids only after a sync; study.ask does the same before it pops
        study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
        trial = optuna.Trial(study, trial._trial_id)
    try:
        state, value = objective.run_trial(
            trial, config, prepared, epochs=opts.epochs, metric=opts.metric, seed=seed, prune=opts.prune
        )
    except Exception as exc:  # any error of the trial's own: FAIL with its message, study goes on
        study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", _one_line(exc))
        study.tell(trial, state=TrialState.FAIL)
        return
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "crash: unknown"
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if code == -signal.SIGKILL else ""
        return f"crash: the trial process was killed by {name}{hint}"
    return f"crash: the trial process exited with code {code}"


class Supervisor:
    """Keeps up to ``opts.jobs`` trials running, each in a forked process, until none is left."""

    def __init__(self, study, space, prepared, opts: RunOptions, results_dir: Path | None):
        self.study = study
        self.space = space
        self.prepared = prepared
        self.opts = opts
        self.running: dict[int, _Running] = {}
        self.heartbeat = uses_heartbeat(study._storage)
        self.lock = WorkerLock(results_dir) if results_dir is not None and not self.heartbeat else None
        self._ctx = multiprocessing.get_context("fork")
        self._stop = False
        self._last_beat = 0.0

    def stop(self) -> None:
        self._stop = True

    def _start(self, trial_id: int) -> None:
        storage = self.study._storage
        if self.lock is not None:
            storage.set_trial_system_attr(trial_id, "hpsearch:worker", str(self.lock.path))
        storage.set_trial_system_attr(trial_id, "hpsearch:worker_id", WORKER_ID)
        if self.heartbeat:
            storage.record_heartbeat(trial_id)
        # The configuration is drawn here, before the fork, so the data it needs are
        # scaled once in this process and shared by every trial process that follows.
        trial = optuna.Trial(self.study, trial_id)
        retry_of = trial._cached_frozen_trial.system_attrs.get("failed_trial")
        seed = objective.trial_seed(self.opts.seed, trial.number if retry_of is None else retry_of)
        try:
            config = self.space.suggest(trial)
            data_opts, _ = objective.split_config(config)
            self.prepared.normalized(data_opts["normalizer"], data_opts["norm_axis"])
        except Exception as exc:
            storage.set_trial_user_attr(trial_id, "fail_reason", _one_line(exc))
            self.study.tell(trial, state=TrialState.FAIL)
            return
        p = self._ctx.Process(
            target=_child_main,
            args=(trial, config, seed, self.prepared, self.opts),
            name=f"hpsearch-trial-{trial.number}",
            daemon=True,
        )
        p.start()
        self.running[trial_id] = _Running(trial_id, trial.number, p, time.monotonic())

    def _reap(self, events: list[str]) -> None:
        now = time.monotonic()
        beat = self.heartbeat and now - self._last_beat >= HEARTBEAT_SECONDS / 2
        if beat:
            self._last_beat = now
        for tid, r in list(self.running.items()):
            code = r.process.exitcode
            timeout = self.opts.trial_timeout
            if code is None and timeout is not None and now - r.started > timeout:
                r.process.kill()
                r.process.join()
                mark_failed(self.study, tid, f"timeout: stopped after {timeout:g} s", retry=False)
                events.append(f"trial {r.number} stopped: over the {timeout:g} s time limit")
            elif code is None:
                if beat:  # on the trial's behalf: it lives as long as this supervisor sees it
                    self.study._storage.record_heartbeat(tid)
                continue
            elif code != 0 or self.study._storage.get_trial(tid).state == TrialState.RUNNING:
                reason = _exit_reason(code if code != 0 else None)
                if mark_failed(self.study, tid, reason, retry=False):
                    events.append(f"trial {r.number} failed: {reason}")
            r.process.join()
            del self.running[tid]

    def interrupt(self) -> list[int]:
        """Stop every running trial now; they are failed and queued again. Returns their numbers."""
        numbers = []
        for tid, r in list(self.running.items()):
            r.process.kill()
            r.process.join()
            if mark_failed(self.study, tid, "interrupted: stopped by the user", retry=True):
                numbers.append(r.number)
            del self.running[tid]
        return numbers

    def step(self, wait: float = 0.2) -> tuple[bool, list[str]]:
        """Reap finished trials, start new ones; returns (still working?, events)."""
        events: list[str] = []
        self._reap(events)
        if not self._stop:
            if fail_stale_trials(self.study):
                events.append("trials of a dead worker were failed and queued again")
            while len(self.running) < self.opts.jobs:
                tid = claim(self.study)
                if tid is None:
                    break
                self._start(tid)
        if not self.running:
            if self._stop:
                return False, events
            c = effective_trials(self.study)
            if c["WAITING"] == 0 and c["RUNNING"] == 0:
                return False, events
            # other workers still run trials; one of them may die and be queued again
        sentinels = [r.process.sentinel for r in self.running.values()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout=wait)
        else:
            time.sleep(wait * 5)
        return True, events

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()


def progress(study: optuna.Study, total: int) -> Progress:
    trials = study.get_trials(deepcopy=False)
    c = effective_trials(study)
    p = Progress(finished=c["finished"], total=total, running=c["RUNNING"], failed=c["FAIL"])
    p.diverged = sum(
        1 for t in trials if t.state == TrialState.PRUNED and t.user_attrs.get("prune_reason") in ("overflow", "nan")
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        best = (max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min)(
            complete, key=lambda t: t.value
        )
        p.best, p.best_number = best.value, best.number
    return p


# ---------------------------------------------------------------- locks for the results directory


@contextmanager
def directory_lock(results_dir: Path):
    """Serialize study creation / top-up between processes sharing one results directory."""
    results_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(results_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_writable(results_dir: Path) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = results_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ResultsError(f"{results_dir}: cannot write results ({exc.strerror or exc})") from None
