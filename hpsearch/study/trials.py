"""A study's trials as configurations: slots, the claimed queue, interruptions, and dead workers.

A study of N trials runs N *configurations*, its slots 0..N-1. A trial runs one
slot (system attribute ``hpsearch:slot``); the sampler and the training seed
read the slot, never the trial number, so a slot is the same configuration
whoever runs it and however often it was interrupted before. An interrupted
trial is a FAIL that is no result: its slot is queued again. A slot is finished
once, by its first trial that finished and was not interrupted.

Every worker *claims* a waiting trial (an atomic WAITING→RUNNING change in the
storage, as Optuna's own trial queue does). A killed worker leaves RUNNING trials
behind: each worker holds an ``flock`` on a file of its own while it lives, and a
RUNNING trial whose worker's lock can be taken is stale; on a database storage
Optuna's heartbeat does the same across machines.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.study import _optuna
from hpsearch.study import storage as stores
from hpsearch.vocabulary import (
    ATTR_TARGET,
    DUPLICATE_OF,
    INTERRUPTED,
    OPTUNA_RETRY_ROOT,
    RETRY_OF,
    SLOT,
    WORKER_LOCK,
)
from hpsearch.vocabulary import (
    WORKER_ID as WORKER_ID_ATTR,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
WORKERS_DIR = "workers"
HOST = socket.gethostname()
WORKER_ID = f"{HOST}:{os.getpid()}"
#: a claimed trial that no worker signed within this time was claimed by a process that died
UNSIGNED_GRACE_SECONDS = 60


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
    def read(cls, study: optuna.Study) -> Ledger:
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
        c["beyond"] = sum(
            1
            for s in self.slots
            if self.target is not None and s >= self.target and self.status(s) in ("COMPLETE", "PRUNED", "FAIL")
        )
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
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.WAITING, params=params, distributions=dists, system_attrs=attrs)
    )


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


def _live_workers(workers_dir: Path, mine: Path | None) -> bool:
    """Whether a worker other than ``mine`` holds its lock in ``workers_dir``."""
    if not workers_dir.is_dir():
        return False
    return any(p != mine and not _lock_is_dead(str(p)) for p in workers_dir.glob("*.lock"))


def _worker_is_gone(t: FrozenTrial, workers_dir: Path | None = None, mine: Path | None = None) -> bool:
    lock = t.system_attrs.get(WORKER_LOCK)
    worker = t.system_attrs.get(WORKER_ID_ATTR)
    if lock is None and worker is None:
        # claimed by a process killed before it could sign the trial: stale at once when no other
        # worker of this results directory lives (none can be about to sign it), else after a grace period
        if workers_dir is not None and not _live_workers(workers_dir, mine):
            return True
        started = t.datetime_start.timestamp() if t.datetime_start else time.time()
        return time.time() - started > UNSIGNED_GRACE_SECONDS
    if lock is not None and Path(lock).is_absolute() and Path(lock).parent.is_dir():
        return _lock_is_dead(lock)
    # a lock path of hpsearch 0.1 (relative to where that run started), or no lock: ask the process table
    return bool(_pid_is_dead(worker))


def fail_stale_trials(study: optuna.Study, workers_dir: Path | None = None, mine: Path | None = None) -> int:
    """Fail (and queue again) RUNNING trials whose worker is gone; returns how many.

    ``workers_dir`` is where the workers of a journal study keep their locks (``mine``
    is the caller's own): with it, a trial claimed by a process that died before it
    signed the trial is found at once instead of after a grace period."""
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
        if _worker_is_gone(t, workers_dir, mine) and mark_failed(
            study, _optuna.trial_id(t), "interrupted: its worker process is gone", retry=True
        ):
            n += 1
    return n
