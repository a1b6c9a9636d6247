"""The supervisor: a worker keeps up to ``jobs`` trials running, each in a process forked for it alone.

The data are loaded once, before the fork, and shared copy-on-write. A trial that
segfaults, runs out of memory, calls ``os._exit`` or overruns ``--trial-timeout``
costs that trial only: the supervisor sees the exit status, records the trial as
FAIL with the cause, and goes on. (A pool such as joblib's cannot tell which call
killed a worker and breaks as a whole.) A trial process that cannot record its
result because the storage failed exits with ``EXIT_STORAGE``; the supervisor then
stops the run, and the resume queues that trial's configuration again.

Every trial process dies with its supervisor (Linux's parent-death signal), so a
killed run leaves no orphans.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpsearch.errors import HPSearchError, ResultsError, StorageError
from hpsearch.study import _optuna, objective
from hpsearch.study import storage as stores
from hpsearch.study.trials import (
    WORKER_ID,
    WorkerLock,
    claim,
    effective_trials,
    fail_stale_trials,
    mark_failed,
    requeue_missing,
    slot_of,
    uses_heartbeat,
)
from hpsearch.vocabulary import FAILURES, WORKER_LOCK, model_file
from hpsearch.vocabulary import WORKER_ID as WORKER_ID_ATTR

HEARTBEAT_SECONDS = stores.HEARTBEAT_SECONDS
#: exit status of a trial process that could not record its result (the storage failed)
EXIT_STORAGE = 75


@dataclass
class RunOptions:
    jobs: int
    epochs: int
    metric: str
    seed: int
    prune: bool
    trial_timeout: float | None = None
    storage_url: str | None = None
    models_dir: Path | None = None  # where a completed trial saves its best-epoch model (None: not saved)
    patience: int = 0  # early stopping: epochs without a better validation metric (0: never)
    study_name: str = ""


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


def require_fork(command: str) -> None:
    """One clear line where trials cannot run: each runs in a forked process (Linux, macOS; not Windows)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise HPSearchError(
            f"{command} runs each trial in a forked process, which this platform ({sys.platform}) does not offer; "
            f"run it under WSL or on a Linux machine (several machines can share one study through PostgreSQL "
            f"with `hpsearch worker`); check, show, regions, narrow, plot and reading studies from Python work here"
        )


def set_pdeathsig(name: str | None = None) -> None:
    """Linux: this process dies with its parent (a killed run leaves no orphans); ``name`` is what ps shows."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if name:
            libc.prctl(15, name.encode()[:15])  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _child_main(trial: optuna.Trial, config: dict, seed: int, prepared, opts: RunOptions) -> None:
    """Body of a trial process: train the configuration and tell the study.

    Exit status 0: told (or another process had already finished the trial);
    ``EXIT_STORAGE``: the storage could not take the result (the supervisor stops the run).
    """
    set_pdeathsig("hpsearch-trial")
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
        study = optuna.load_study(
            study_name=study.study_name,
            storage=stores.reopen(opts.storage_url),
            sampler=study.sampler,
            pruner=study.pruner,
        )
        # Optuna's cache maps trial ids only after a sync; study.ask does the same before it pops
        _optuna.storage(study).get_all_trials(_optuna.study_id(study), deepcopy=False, states=(TrialState.RUNNING,))
        trial = optuna.Trial(study, _optuna.trial_id(trial))
    try:
        state, value = objective.run_trial(
            trial,
            config,
            prepared,
            epochs=opts.epochs,
            metric=opts.metric,
            seed=seed,
            prune=opts.prune,
            patience=opts.patience,
            keep=None if opts.models_dir is None else keeper(trial.number, config, seed, prepared, opts),
        )
    except (StorageError, optuna.exceptions.UpdateFinishedTrialError):
        raise
    except Exception as exc:  # any error of the trial's own: FAIL with its message, study goes on
        if isinstance(exc, OSError) and stores.is_disk_full(exc):
            raise
        _optuna.storage(study).set_trial_user_attr(_optuna.trial_id(trial), "fail_reason", one_line(exc))
        study.tell(trial, state=TrialState.FAIL)
        return
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)


def keeper(number: int, config: dict, seed: int, prepared, opts: RunOptions):
    """What a completed trial does with its trained network: save it as a model file (a few ms)."""

    def keep(history) -> None:
        info = {
            "study": opts.study_name,
            "trial": number,
            "metric": opts.metric,
            "value": history.best_value,
            "best_epoch": history.best_epoch,
            "seed": seed,
        }
        model = objective.as_model(history.model, config, prepared, info)
        try:
            opts.models_dir.mkdir(parents=True, exist_ok=True)
            model.save(opts.models_dir / model_file(number))
        except OSError as exc:
            if stores.is_disk_full(exc):
                raise
            # no file, no loss: the model is rebuilt from the trial's seed when asked for

    return keep


def fork_map(fn, items: list, jobs: int, stop=lambda: False, name: str = "hpsearch-work"):
    """Yield ``(index, fn(item))`` for each item, computed in up to ``jobs`` forked processes.

    Each process computes one item and dies with its parent; ``stop()`` is polled
    while waiting, and when it turns true every process is killed at once and the
    generator ends. An item whose process fails yields ``(index, exception)``.
    """
    ctx = multiprocessing.get_context("fork")
    pending = list(enumerate(items))
    live: dict = {}  # reader -> (index, process)

    def child(conn, item):
        set_pdeathsig(name)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            conn.send(fn(item))
        except BaseException as exc:  # sent back whole: the caller decides
            conn.send(exc)
        finally:
            conn.close()

    try:
        while pending or live:
            while pending and len(live) < jobs:
                index, item = pending.pop(0)
                reader, writer = ctx.Pipe(duplex=False)
                p = ctx.Process(target=child, args=(writer, item), daemon=True)
                p.start()
                writer.close()
                live[reader] = (index, p)
            if stop():
                return
            for reader in multiprocessing.connection.wait(list(live), timeout=0.2):
                index, p = live.pop(reader)
                try:
                    result = reader.recv()
                except EOFError:
                    p.join()
                    result = RuntimeError(_exit_reason(p.exitcode))
                reader.close()
                p.join()
                yield index, result
    finally:
        for _, p in live.values():
            p.kill()
        for reader, (_, p) in live.items():
            p.join()
            reader.close()


def one_line(exc: BaseException) -> str:
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
            storage.set_trial_user_attr(trial_id, "fail_reason", one_line(exc))
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
            raise StorageError(
                "a trial could not record its result: the storage cannot be written "
                "(no space left?); every finished trial is kept — free some space and run "
                "the same command to resume"
            )

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
            lock = self.lock.path if self.lock is not None else None
            if fail_stale_trials(self.study, lock.parent if lock else None, lock):
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
                # a slot whose requeue was lost (its process died in between) is queued now, not left out
                if c["missing"] == 0 or not requeue_missing(self.study):
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
    p.diverged = sum(  # every way of failing, not only divergence (hpsearch.vocabulary.FAILURES)
        1 for t in trials if t.state == TrialState.PRUNED and t.user_attrs.get("prune_reason") in FAILURES
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
