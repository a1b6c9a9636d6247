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
from optuna.trial import FrozenTrial, TrialState

from hpsearch import _optuna, objective
from hpsearch import storage as stores
from hpsearch.errors import HPSearchError, ResultsError, StorageError
from hpsearch.vocabulary import (
    ATTR_TARGET,
    DUPLICATE_OF,
    INTERRUPTED,
    OPTUNA_RETRY_ROOT,
    PRUNERS,
    RETRY_OF,
    SAMPLERS,
    SLOT,
    WORKER_ID as WORKER_ID_ATTR,
    WORKER_LOCK,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
WORKERS_DIR = "workers"
HEARTBEAT_SECONDS = stores.HEARTBEAT_SECONDS
HOST = socket.gethostname()
WORKER_ID = f"{HOST}:{os.getpid()}"
#: a claimed trial that no worker signed within this time was claimed by a process that died
UNSIGNED_GRACE_SECONDS = 60
#: exit status of a trial process that could not record its result (the storage failed)
EXIT_STORAGE = 75


class TrialSeededSampler(optuna.samplers.RandomSampler):
    """Random / log-uniform sampling where each draw depends only on (seed, configuration slot, name).

    Optuna's ``RandomSampler`` draws from one stream, so which trial gets which
    configuration depends on the order trials start in. Reseeding per draw makes
    configuration *k* the same whatever the number of workers, and whatever
    interrupted the trials that ran it before.
    """

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)
        self._base_seed = int(seed)

    def sample_independent(self, study, trial, param_name, param_distribution):
        key = f"{self._base_seed}:{slot_of(trial)}:{param_name}".encode()
        _optuna.sampler_rng(self).seed(zlib.crc32(key))
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
    return stores.open_storage(url, results_dir, on_stale=_requeue_stale)


def uses_heartbeat(storage) -> bool:
    """True for an RDB storage opened with a heartbeat interval (what Optuna's stale-trial check needs)."""
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None


# ---------------------------------------------------------------- trial accounting
#
# A study of N trials runs N *configurations*, its slots 0..N-1. A trial runs one
# slot (system attribute ``hpsearch:slot``); the sampler and the training seed
# read the slot, never the trial number, so a slot is the same configuration
# whoever runs it and however often it was interrupted before. An interrupted
# trial is a FAIL that is no result: its slot is queued again. A slot is finished
# once, by its first trial that finished and was not interrupted.


def slot_of(trial: FrozenTrial | optuna.Trial) -> int:
    """The configuration a trial runs (studies made before slots: the first trial of its retry chain)."""
    attrs = trial.system_attrs
    slot = attrs.get(SLOT)
    if slot is None:
        slot = attrs.get(OPTUNA_RETRY_ROOT, trial.number)
    return int(slot)


def is_interrupted(trial: FrozenTrial) -> bool:
    """A FAIL that is no result of its configuration: stopped from outside, run again."""
    if trial.state != TrialState.FAIL or DUPLICATE_OF in trial.system_attrs:
        return False
    reason = trial.user_attrs.get("fail_reason")
    # Optuna's heartbeat check fails a stale trial without a reason of its own
    return bool(trial.system_attrs.get(INTERRUPTED)) or not reason or str(reason).startswith("interrupted")


def is_duplicate(trial: FrozenTrial) -> bool:
    return DUPLICATE_OF in trial.system_attrs


def is_live(trial: FrozenTrial) -> bool:
    """Waiting, running, or a result (not interrupted, not a dropped duplicate)."""
    return not (is_interrupted(trial) or is_duplicate(trial))


@dataclass
class Ledger:
    """A study's trials read once and grouped by slot."""

    slots: dict[int, list[FrozenTrial]]
    target: int | None

    @classmethod
    def read(cls, study: optuna.Study) -> "Ledger":
        slots: dict[int, list[FrozenTrial]] = {}
        for t in study.get_trials(deepcopy=False):
            slots.setdefault(slot_of(t), []).append(t)
        for trials in slots.values():
            trials.sort(key=lambda t: t.number)
        target = study.user_attrs.get(ATTR_TARGET)
        return cls(slots, None if target is None else int(target))

    def status(self, slot: int) -> str:
        """COMPLETE / PRUNED / FAIL (its result), RUNNING, WAITING, or "missing" (to be queued again)."""
        trials = [t for t in self.slots.get(slot, []) if is_live(t)]
        for t in trials:
            if t.state in FINISHED:
                return t.state.name
        for state in (TrialState.RUNNING, TrialState.WAITING):
            if any(t.state == state for t in trials):
                return state.name
        return "missing"

    def counts(self) -> dict[str, int]:
        slots = self.slots if self.target is None else {s: v for s, v in self.slots.items() if s < self.target}
        c = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0, "missing": 0}
        for s in slots:
            c[self.status(s)] += 1
        if self.target is not None:
            c["missing"] += max(0, self.target - len(slots))
        c["retried"] = sum(1 for ts in self.slots.values() for t in ts if is_interrupted(t))
        c["duplicates"] = sum(1 for ts in self.slots.values() for t in ts if is_duplicate(t))
        c["finished"] = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
        c["beyond"] = sum(1 for s in self.slots if self.target is not None and s >= self.target
                          and self.status(s) in ("COMPLETE", "PRUNED", "FAIL"))
        return c


def effective_trials(study: optuna.Study) -> dict[str, int]:
    """Counts of configurations by state: each slot once, interrupted and duplicate trials aside."""
    return Ledger.read(study).counts()


def finished_configurations(study: optuna.Study) -> int:
    """How many configurations have a result, whatever the study's current target."""
    ledger = Ledger.read(study)
    return sum(1 for s in ledger.slots if ledger.status(s) in ("COMPLETE", "PRUNED", "FAIL"))


def top_up(study: optuna.Study, n_trials: int) -> int:
    """Make the study's target ``n_trials`` configurations and queue every slot below it that
    has no live trial (never run, or only interrupted); returns how many were queued."""
    if study.user_attrs.get(ATTR_TARGET) != n_trials:
        study.set_user_attr(ATTR_TARGET, n_trials)
    return requeue_missing(study)


def requeue_missing(study: optuna.Study) -> int:
    """Queue again each slot below the target whose trials were all interrupted (or that has none)."""
    ledger = Ledger.read(study)
    target = ledger.target if ledger.target is not None else (max(ledger.slots) + 1 if ledger.slots else 0)
    added = 0
    for slot in range(target):
        if ledger.status(slot) == "missing":
            previous = ledger.slots.get(slot, [])
            _enqueue(study, slot, previous[-1] if previous else None)
            added += 1
    return added


def _enqueue(study: optuna.Study, slot: int, previous: FrozenTrial | None) -> None:
    """A WAITING trial for ``slot``; a retry keeps the configuration ``previous`` had drawn."""
    attrs = {SLOT: slot}
    params, dists = {}, {}
    if previous is not None:
        attrs[RETRY_OF] = previous.number
        attrs[OPTUNA_RETRY_ROOT] = slot
        params, dists = dict(previous.params), dict(previous.distributions)
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=params, distributions=dists,
                                              system_attrs=attrs))


def claim(study: optuna.Study) -> int | None:
    """Atomically move one WAITING trial of a slot below the target to RUNNING; its id, or None.

    Two processes that queued the same slot at once leave two trials for it: the
    second one claimed is dropped (FAIL, ``hpsearch:duplicate_of``) before it runs,
    so a configuration never finishes twice.
    """
    storage = _optuna.storage(study)
    sid = _optuna.study_id(study)
    target = study.user_attrs.get(ATTR_TARGET)
    waiting = storage.get_all_trials(sid, deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: (slot_of(t), t.number)):
        if target is not None and slot_of(t) >= target:
            continue
        tid = _optuna.trial_id(t)
        try:
            if not storage.set_trial_state_values(tid, state=TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        first = _first_live(study, slot_of(t))
        if first is not None and first.number < t.number:
            _drop_duplicate(storage, tid, first.number)
            continue
        return tid
    return None


def _first_live(study: optuna.Study, slot: int) -> FrozenTrial | None:
    live = [t for t in study.get_trials(deepcopy=False) if slot_of(t) == slot and is_live(t)]
    return min(live, key=lambda t: t.number) if live else None


def _drop_duplicate(storage, trial_id: int, first: int) -> None:
    try:
        storage.set_trial_system_attr(trial_id, DUPLICATE_OF, first)
        storage.set_trial_user_attr(trial_id, "fail_reason", f"duplicate: trial {first} runs this configuration")
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def mark_failed(study: optuna.Study, trial_id: int, reason: str, *, retry: bool) -> bool:
    """RUNNING → FAIL with ``fail_reason``; with ``retry`` the trial is interrupted and its slot queued again.

    Returns False when the trial had already finished (another process got there
    first). The slot is queued by whoever made the change; if that process dies
    before it can, the next ``top_up`` or stale-trial check queues it.
    """
    storage = _optuna.storage(study)
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        if retry:
            storage.set_trial_system_attr(trial_id, INTERRUPTED, True)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another worker got there first
    if retry:
        requeue_missing(study)
    return True


def _requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's heartbeat check failed ``trial`` (its worker stopped beating): queue its slot again."""
    requeue_missing(study)


# ---------------------------------------------------------------- worker liveness


class WorkerLock:
    """An ``flock`` held for the life of a worker process; the kernel drops it when the process dies."""

    def __init__(self, results_dir: Path):
        import fcntl

        d = (Path(results_dir) / WORKERS_DIR).absolute()
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.unlink(missing_ok=True)


def _lock_is_dead(path: str) -> bool:
    import fcntl

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


def _pid_is_dead(worker_id: str | None) -> bool | None:
    """From ``host:pid``: True / False on this host, None when the worker ran elsewhere."""
    host, _, pid = (worker_id or "").rpartition(":")
    if host != HOST or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _worker_is_gone(t: FrozenTrial) -> bool:
    lock = t.system_attrs.get(WORKER_LOCK)
    worker = t.system_attrs.get(WORKER_ID_ATTR)
    if lock is None and worker is None:
        # claimed but killed before the worker could sign it: stale after a grace period
        started = t.datetime_start.timestamp() if t.datetime_start else time.time()
        return time.time() - started > UNSIGNED_GRACE_SECONDS
    if lock is not None and Path(lock).is_absolute() and Path(lock).parent.is_dir():
        return _lock_is_dead(lock)
    # a lock path of hpsearch 0.1 (relative to where that run started), or no lock: ask the process table
    return bool(_pid_is_dead(worker))


def fail_stale_trials(study: optuna.Study) -> int:
    """Fail (and queue again) RUNNING trials whose worker is gone; returns how many."""
    storage = _optuna.storage(study)
    if uses_heartbeat(storage):
        before = effective_trials(study)["retried"]
        optuna.storages.fail_stale_trials(study)
        # a claim whose worker died before its first heartbeat has none: Optuna never finds it stale
        for t in storage.get_all_trials(_optuna.study_id(study), deepcopy=False, states=(TrialState.RUNNING,)):
            if WORKER_ID_ATTR not in t.system_attrs and _worker_is_gone(t):
                mark_failed(study, _optuna.trial_id(t), "interrupted: claimed by a process that died", retry=True)
        requeue_missing(study)
        return effective_trials(study)["retried"] - before
    n = 0
    for t in storage.get_all_trials(_optuna.study_id(study), deepcopy=False, states=(TrialState.RUNNING,)):
        if _worker_is_gone(t) and mark_failed(study, _optuna.trial_id(t),
                                              "interrupted: its worker process is gone", retry=True):
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


def set_pdeathsig() -> None:
    """Linux: this process dies with its parent (a killed run leaves no orphans)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _child_main(trial: optuna.Trial, config: dict, seed: int, prepared, opts: RunOptions) -> None:
    """Body of a trial process: train the configuration and tell the study.

    Exit status 0: told (or another process had already finished the trial);
    ``EXIT_STORAGE``: the storage could not take the result (the supervisor stops the run).
    """
    set_pdeathsig()
    faulthandler.disable()  # a crash is reported once, by the supervisor, as the trial's fail_reason
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C and SIGTERM are the supervisor's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _train_and_tell(trial, config, seed, prepared, opts)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another process finished this trial (it judged this worker dead): its word stands
    except StorageError:
        os._exit(EXIT_STORAGE)
    except OSError as exc:
        if stores.is_disk_full(exc):
            os._exit(EXIT_STORAGE)
        raise


def _train_and_tell(trial: optuna.Trial, config: dict, seed: int, prepared, opts: RunOptions) -> None:
    study = trial.study
    if opts.storage_url is not None and not stores.is_journal(_optuna.storage(study)):
        # never share a database connection across a fork
        study = optuna.load_study(study_name=study.study_name, storage=stores.reopen(opts.storage_url),
                                  sampler=study.sampler, pruner=study.pruner)
        # Optuna's cache maps trial ids only after a sync; study.ask does the same before it pops
        _optuna.storage(study).get_all_trials(_optuna.study_id(study), deepcopy=False, states=(TrialState.RUNNING,))
        trial = optuna.Trial(study, _optuna.trial_id(trial))
    try:
        state, value = objective.run_trial(
            trial, config, prepared, epochs=opts.epochs, metric=opts.metric, seed=seed, prune=opts.prune
        )
    except (StorageError, optuna.exceptions.UpdateFinishedTrialError):
        raise
    except Exception as exc:  # any error of the trial's own: FAIL with its message, study goes on
        if isinstance(exc, OSError) and stores.is_disk_full(exc):
            raise
        _optuna.storage(study).set_trial_user_attr(_optuna.trial_id(trial), "fail_reason", _one_line(exc))
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
        self.storage = _optuna.storage(study)
        self.space = space
        self.prepared = prepared
        self.opts = opts
        self.running: dict[int, _Running] = {}
        self.heartbeat = uses_heartbeat(self.storage)
        self.lock = WorkerLock(results_dir) if results_dir is not None and not self.heartbeat else None
        self._ctx = multiprocessing.get_context("fork")
        self._stop = False
        self._last_beat = 0.0

    def stop(self) -> None:
        self._stop = True

    def _start(self, trial_id: int) -> None:
        storage = self.storage
        try:
            if self.lock is not None:
                storage.set_trial_system_attr(trial_id, WORKER_LOCK, str(self.lock.path))
            storage.set_trial_system_attr(trial_id, WORKER_ID_ATTR, WORKER_ID)
            if self.heartbeat:
                storage.record_heartbeat(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # another process judged the claim dead and finished it
        # The configuration is drawn here, before the fork, so the data it needs are
        # scaled once in this process and shared by every trial process that follows.
        trial = optuna.Trial(self.study, trial_id)
        seed = objective.trial_seed(self.opts.seed, slot_of(_optuna.frozen(trial)))
        try:
            config = self.space.suggest(trial)
            data_opts, _ = objective.split_config(config)
            self.prepared.normalized(data_opts["normalizer"], data_opts["norm_axis"])
        except (StorageError, optuna.exceptions.UpdateFinishedTrialError):
            raise
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
        storage_failed = False
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
                    self.storage.record_heartbeat(tid)
                continue
            elif code == EXIT_STORAGE:
                storage_failed = True  # left RUNNING: the resume queues it again
            elif code != 0 or self.storage.get_trial(tid).state == TrialState.RUNNING:
                reason = _exit_reason(code if code != 0 else None)
                if mark_failed(self.study, tid, reason, retry=False):
                    events.append(f"trial {r.number} failed: {reason}")
            r.process.join()
            del self.running[tid]
        if storage_failed:
            raise StorageError("a trial could not record its result: the storage cannot be written "
                               "(no space left?); every finished trial is kept — free some space and run "
                               "the same command to resume")

    def interrupt(self, reason: str = "interrupted: stopped by the user") -> list[int]:
        """Stop every running trial now; they are failed and queued again. Returns their numbers.

        Safe to call when the storage itself has failed: the trials are stopped all
        the same, and those that cannot be marked stay RUNNING for the resume to find.
        """
        numbers = []
        for r in self.running.values():
            r.process.kill()
        for tid, r in list(self.running.items()):
            r.process.join()
            del self.running[tid]
            try:
                if mark_failed(self.study, tid, reason, retry=True):
                    numbers.append(r.number)
            except (StorageError, OSError):
                continue
        return numbers

    def step(self, wait: float = 0.2) -> tuple[bool, list[str]]:
        """Reap finished trials, start new ones; returns (still working?, events)."""
        events: list[str] = []
        self._reap(events)
        if not self._stop:
            if fail_stale_trials(self.study):
                events.append("trials of a dead worker were failed and queued again")
            while len(self.running) < self.opts.jobs and not self._stop:
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
    p = Progress(finished=min(c["finished"], total), total=total, running=c["RUNNING"], failed=c["FAIL"])
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
    import fcntl

    results_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(results_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o666)
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
