"""argparse value types whose errors say which option, what it must be, and what it got."""

from __future__ import annotations

import argparse


def whole(option: str, minimum: int, maximum: int | None = None, what: str = "a whole number"):
    """A whole number >= ``minimum`` (and <= ``maximum`` when given); ``what`` names it in
    the message for text that is no number at all."""
    if maximum is not None:
        rule = f"between {minimum} and {maximum}"
    else:
        rule = "at least 1" if minimum == 1 else f"{minimum} or more" if minimum == 0 else f"at least {minimum}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be {what}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{option} must be {rule}, got {value}")
        return value

    return parse


def positive(option: str):
    """A number > 0."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{option} must be > 0, got {text}")
        return value

    return parse


def add_workers(p) -> None:
    """``--jobs`` and ``--trial-timeout``: how a run or a worker keeps its trial processes."""
    p.add_argument(
        "--jobs",
        "-j",
        type=whole("--jobs", 1),
        default=None,
        help="trials run at once, each in its own process (default: all cores)",
    )
    p.add_argument(
        "--trial-timeout",
        type=positive("--trial-timeout"),
        default=None,
        metavar="SECONDS",
        help="stop a trial after this many seconds and record it as failed (default: no limit)",
    )


def add_results_dir(p) -> None:
    """The ``RESULTS_DIR`` every command that reads a study takes."""
    from pathlib import Path

    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a study's results directory (results/<name>)")
