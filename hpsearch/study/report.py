"""What a run shows on the terminal while it works: the progress line."""

from __future__ import annotations

import sys
import time

from hpsearch.study.supervisor import Progress


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

    def progress(self, p: Progress) -> None:
        if self.quiet:
            return
        frac = p.finished / p.total if p.total else 1.0
        line = self.line(p)
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

    def line(self, p: Progress) -> str:
        """`` 63/100 ━━━━╸   best 0.9757 (#41) · failed 3 · 0:09 elapsed · ~0:05 left``: failed counts every
        kind (overflow, nan, collapsed, dead, stalled); trials that crashed are ``errors``."""
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
        extra = f" · errors {p.failed}" if p.failed else ""
        return (
            f" {p.finished:>{len(str(p.total))}}/{p.total} {bar}  {best} · failed {p.diverged}{extra}"
            f" · {_clock(elapsed)} elapsed{left}"
        )

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


class NotebookReporter(Reporter):
    """Progress in a Jupyter notebook: one output line updated in place (IPython's display handle)."""

    def __init__(self, quiet: bool = False):
        super().__init__(stream=sys.stdout, quiet=quiet)
        self.tty = False
        self._handle = None

    def progress(self, p: Progress) -> None:
        if self.quiet:
            return
        from IPython.display import display

        line = self.line(p)
        if line == self._line:
            return
        self._line = line
        bundle = {"text/plain": line}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def end_progress(self) -> None:
        self._handle = None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a rewritten terminal line does not work)."""
    shell = sys.modules.get("IPython")
    shell = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
