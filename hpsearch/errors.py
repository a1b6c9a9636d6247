"""The exception family of hpsearch.

Every error a user can cause is an :class:`HPSearchError`; the command line turns
it into one line on stderr and exit code 2. ``Diverged`` is not a user error but
a result: the trainer raises it, the study records the trial as pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: longest message an error keeps: the key path and the rule come first, a huge value is cut
MESSAGE_LIMIT = 1000


class HPSearchError(ValueError):
    """A problem hpsearch can name in one line (bad file, bad data, bad option)."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str) and len(args[0]) > MESSAGE_LIMIT:
            text = args[0]
            args = (f"{text[: MESSAGE_LIMIT - 40]}… (message cut: {len(text):,} characters)",)
        super().__init__(*args)


class SpaceError(HPSearchError):
    """A search-space file breaks a rule; ``path`` is the TOML key path (``params.lr``)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class DataError(HPSearchError):
    """A data set cannot be read or does not fit what was asked of it."""


class ResultsError(HPSearchError):
    """A results directory is missing, foreign, or cannot be written."""


class StorageError(HPSearchError):
    """The study's storage cannot be written or reached (a full disk, a database that stays down).

    Nothing already recorded is lost: the run stops, and the same command resumes it
    once the cause is gone.
    """


class Interrupted(KeyboardInterrupt):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped hpsearch; the exit status is 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@dataclass
class Diverged(Exception):
    """Training blew up: ``reason`` is ``"overflow"`` or ``"nan"``.

    ``epoch`` is 1-based, ``step`` counts optimizer steps from 1 over the whole run,
    ``where`` names the stage (``"forward layer 3"``, ``"backward layer 2"``, ...),
    and ``trace`` holds one dict per recent step with the magnitudes that show a
    blow-up coming (see ``hpsearch.mlp.TRACE_COLUMNS``).
    """

    reason: str
    epoch: int
    step: int
    where: str = ""
    trace: list[dict] = field(default_factory=list)

    def __post_init__(self):
        super().__init__(str(self))

    def __str__(self) -> str:
        at = f" in {self.where}" if self.where else ""
        return f"{self.reason}{at} at epoch {self.epoch}, step {self.step}"

    def __reduce__(self):
        return (type(self), (self.reason, self.epoch, self.step, self.where, self.trace))


@dataclass
class Dead(Exception):
    """Training can no longer learn: hidden layer ``layer`` (1-based) passes no gradient and
    outputs the same value for every training input (see ``hpsearch.mlp._outcome.DeadWatch``).

    Like :class:`Diverged` a result, not an error: the trainer stops the run at ``epoch``
    (after ``step`` optimizer steps) as soon as this is certain.
    """

    epoch: int
    step: int
    layer: int
    reason: str = "dead"

    def __post_init__(self):
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"dead: hidden layer {self.layer} outputs the same value for every training input "
            f"at epoch {self.epoch}, step {self.step}"
        )

    @property
    def where(self) -> str:
        return f"hidden layer {self.layer}"

    def __reduce__(self):
        return (type(self), (self.epoch, self.step, self.layer))
