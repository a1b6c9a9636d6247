"""Where a study lives: Optuna's journal file or an Optuna database, opened so that faults lose nothing.

The journal file
----------------
Optuna appends one JSON line per operation. A process that dies or runs out
of disk in the middle of a write leaves a cut last line; Optuna's own backend
then glues the next record to it, and every later read fails for good. Here:

- a failed append is taken back (the file is truncated to where it was), and
  the caller gets a :class:`StorageError`: one line, the study as it was;
- before every append, and when the file is opened, a cut last line is moved
  to ``<journal>.broken`` (set aside, never silently dropped);
- a journal bricked by an older version (a cut record with the next one glued
  to it) is repaired on first read: every complete record is kept, the broken
  fragments go to ``<journal>.broken``.

The write lock is an ``flock``, which the kernel drops when its holder dies.

A database
----------
Any Optuna RDB URL (PostgreSQL, MySQL, SQLite). Every call goes through
:class:`RetryingStorage`, which rides out an outage: a lost connection is retried
with back-off (each call is one transaction, rolled back when it fails) and a
line says the worker is waiting, until ``patience`` seconds have passed.
"""

from __future__ import annotations

import abc
import errno
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import BaseJournalBackend

from hpsearch.errors import StorageError
from hpsearch.study import _optuna
from hpsearch.vocabulary import JOURNAL_FILE, clip

log = logging.getLogger("hpsearch")

HEARTBEAT_SECONDS = 2
#: a RUNNING trial whose heartbeat is older than this is stale (longer than an outage a worker rides out quickly)
GRACE_SECONDS = 30
#: how long a worker waits for an unreachable database before it gives up
PATIENCE_SECONDS = 600.0


def open_storage(url: str | None, results_dir: Path, *, on_stale: Callable | None = None) -> BaseStorage:
    """The journal file under ``results_dir`` by default, else the storage ``url`` names.

    ``url`` may be ``journal:PATH``, a path to an existing journal file, or any
    Optuna RDB URL; ``on_stale(study, frozen_trial)`` is called for each trial a
    database heartbeat check fails.
    """
    if url is None:
        results_dir.mkdir(parents=True, exist_ok=True)
        return journal(results_dir / JOURNAL_FILE)
    path = journal_path(url)
    if path is not None:
        if not path.parent.is_dir():
            raise StorageError(f"{path}: no such directory for a journal file")
        return journal(path)
    try:
        rdb = optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=on_stale,
        )
    except Exception as exc:  # sqlalchemy / driver errors: name the URL, not the stack
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"cannot open storage {mask_url(url)!r}: {mask_text(first, url)}") from None
    return RetryingStorage(_optuna.cached(rdb), name=mask_url(url))


def reopen(url: str) -> BaseStorage:
    """A database storage of one's own (after a fork a connection must not be shared); waits out an outage."""

    def connect():
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"pool_pre_ping": True}, skip_compatibility_check=True, skip_table_creation=True
        )

    waiting = RetryingStorage(None, name=mask_url(url))
    return RetryingStorage(_optuna.cached(waiting.retry(connect)), name=mask_url(url))


def journal_path(url: str) -> Path | None:
    """The journal file a ``--storage`` value names (``journal:PATH`` or a file path), else None."""
    if url.startswith("journal:"):
        return Path(url[len("journal:") :]).absolute()
    if "://" not in url and (url.endswith(".log") or Path(url).is_file()):
        return Path(url).absolute()
    return None


def is_journal(storage: BaseStorage) -> bool:
    return isinstance(storage, optuna.storages.JournalStorage)


# ---------------------------------------------------------------- passwords


def mask_url(url: str | None) -> str | None:
    """``url`` with its password (if any) shown as ``***``: for headers, errors and meta.json."""
    if url is None:
        return None
    masked = re.sub(r"(://[^/@:]*:)[^/]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", masked)


def mask_text(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (wherever it appears, e.g. in a driver's message) masked."""
    if not url:
        return text
    text = text.replace(url, mask_url(url))
    m = re.search(r"://[^/@:]*:([^/]*)@", url)
    if m and m.group(1):
        text = text.replace(m.group(1), "***")
    return text


# ---------------------------------------------------------------- the journal file


def journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(JournalFile(str(path)))


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
        import fcntl  # POSIX only: imported where it is used

        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


_RECORD_START = b'{"op_code":'


class _BrokenLine(Exception):
    def __init__(self, number: int):
        self.number = number


class JournalFile(BaseJournalBackend):
    """Optuna's journal file format (one JSON record a line), written so that no record is ever cut or glued.

    Implements Optuna's public backend interface (``read_logs``, ``append_logs``);
    the write lock is an ``flock``.
    """

    def __init__(self, path: str):
        self.path = str(path)
        self.aside = self.path + ".broken"
        self._lock = _FlockLock(self.path)
        self._offsets = {0: 0}  # record number → byte offset of its line
        with self._lock:
            if not os.path.exists(self.path):
                open(self.path, "ab").close()
            self._cut_partial_tail()

    def append_logs(self, logs: list[dict]) -> None:
        data = ("\n".join(json.dumps(r, separators=(",", ":")) for r in logs) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    self._cut_partial_tail()  # a writer died mid-line: never glue a record to it
                    size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except BaseException as exc:  # a full disk, or a signal between two writes
                    try:
                        os.ftruncate(fd, size)  # take the partial record back
                    except OSError:
                        pass
                    if isinstance(exc, OSError):
                        raise StorageError(write_failed(self.path, exc)) from None
                    raise
            finally:
                os.close(fd)

    def read_logs(self, log_number_from: int):
        number = log_number_from
        repaired = False
        while True:
            try:
                for n, record in self._records(number):
                    yield record
                    number = n + 1
                return
            except _BrokenLine as broken:  # a complete line that is no record: a cut one with the next glued on
                if repaired:
                    raise StorageError(
                        f"{self.path}: record {broken.number + 1} cannot be read even after setting broken ones aside"
                    ) from None
                with self._lock:
                    self._salvage()
                # the repair changed nothing before the broken line
                self._offsets = {k: v for k, v in self._offsets.items() if k <= broken.number}
                repaired = True

    def _records(self, log_number_from: int):
        """(number, record) from ``log_number_from`` on; stops at a last line still being written."""
        start = max(k for k in self._offsets if k <= log_number_from)
        with open(self.path, "rb") as f:
            f.seek(self._offsets[start])
            number = start
            for line in f:
                if not line.endswith(b"\n"):
                    return  # being written now (a cut one is set aside before anything follows it)
                try:
                    record = json.loads(line)
                except ValueError:
                    raise _BrokenLine(number) from None
                self._offsets[number + 1] = self._offsets[number] + len(line)
                if number >= log_number_from:
                    yield number, record
                number += 1

    # -- repairs; the caller holds the lock

    def _cut_partial_tail(self) -> None:
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            start = _line_start(f, size)
            f.seek(start)
            tail = f.read()
            self._set_aside([tail])
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
        log.warning(
            "%s ended in a cut record (%d bytes, kept in %s); every complete record is kept",
            self.path,
            len(tail),
            Path(self.aside).name,
        )

    def _salvage(self) -> None:
        """Rewrite the journal with every complete record; broken fragments go to the aside file."""
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        tail = lines.pop()  # after the last newline: b"", or a cut record (writers hold the lock we hold)
        kept, broken = [], []
        for line in lines:
            if _parses(line):
                kept.append(line)
                continue
            # a cut record with the next one glued to it: keep the whole record at the end
            at = line.find(_RECORD_START, 1)
            while at > 0 and not _parses(line[at:]):
                at = line.find(_RECORD_START, at + 1)
            if at > 0:
                broken.append(line[:at])
                kept.append(line[at:])
            else:
                broken.append(line)
        if tail:
            broken.append(tail)
        if not broken:
            return
        self._set_aside(broken)
        tmp = f"{self.path}.{os.getpid()}.repair"
        with open(tmp, "wb") as f:
            f.write(b"".join(line + b"\n" for line in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        log.warning(
            "%s held %d broken record(s) (kept in %s); the %d complete records are kept",
            self.path,
            len(broken),
            Path(self.aside).name,
            len(kept),
        )

    def _set_aside(self, chunks: list[bytes]) -> None:
        try:
            with open(self.aside, "ab") as f:
                for chunk in chunks:
                    f.write(chunk.rstrip(b"\n") + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # nothing is dropped that could not be kept
            raise StorageError(write_failed(self.aside, exc)) from None


def _line_start(f, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 if none)."""
    pos = end
    while pos > 0:
        step = min(65536, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def write_failed(path, exc: OSError) -> str:
    what = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return (
            f"{path}: {what.lower()}: the run stopped with every finished trial kept; "
            f"free some space and run the same command to resume"
        )
    return f"{path}: cannot write ({what}); every finished trial is kept"


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _FULL


# ---------------------------------------------------------------- riding out a database outage


_TRANSIENT = {
    "OperationalError",
    "InterfaceError",
    "DisconnectionError",
    "ConnectionFailure",
    "ConnectionTimeout",
    "ConnectionException",
}


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a lost or refused database connection."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        module = type(exc).__module__ or ""
        if type(exc).__name__ in _TRANSIENT and module.split(".")[0] in (
            "sqlalchemy",
            "psycopg",
            "psycopg2",
            "pymysql",
            "MySQLdb",
            "sqlite3",
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class RetryingStorage(BaseStorage, _optuna.BaseHeartbeat):
    """An Optuna storage whose every call waits out a lost database connection.

    Each call of a database storage is one transaction that is rolled back when it
    fails, so repeating it is safe. ``on_wait(message)`` and ``on_back(message)``
    say when a wait starts and ends (by default a warning on the ``hpsearch`` logger).
    """

    def __init__(self, inner: BaseStorage, *, name: str = "storage", patience: float = PATIENCE_SECONDS):
        self._inner = inner
        self._name = name
        self.patience = patience
        self.on_wait: Callable[[str], None] = log.warning
        self.on_back: Callable[[str], None] = log.warning

    def _call(self, method: str, *args, **kwargs):
        return self.retry(getattr(self._inner, method), *args, **kwargs)

    def retry(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, repeated while the database is unreachable (up to ``patience`` s)."""
        started = None
        delay = 0.25
        while True:
            try:
                out = fn(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                if started is None:
                    started = now
                    self.on_wait(
                        f"storage {self._name} unreachable ({_reason(exc)}); waiting for it (up to {self.patience:g} s)"
                    )
                elif now - started > self.patience:
                    raise StorageError(
                        f"storage {self._name} unreachable for {self.patience:g} s "
                        f"({_reason(exc)}); every finished trial is kept — "
                        f"run the same command again once it is back"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if started is not None:
                self.on_back(f"storage {self._name} reachable again after {time.monotonic() - started:.0f} s")
            return out

    def __getattr__(self, name):  # what no base class declares (RDB specifics): passed through as it is
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"RetryingStorage({self._name})"


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return clip(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, 120)


def _delegate(name: str):
    def method(self, *args, **kwargs):
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    return method


for _name in sorted(
    {
        n
        for base in (BaseStorage, _optuna.BaseHeartbeat)
        for n in vars(base)
        if callable(getattr(base, n)) and (not n.startswith("_") or n == "_get_stale_trial_ids")
    }
):
    setattr(RetryingStorage, _name, _delegate(_name))
abc.update_abstractmethods(RetryingStorage)
