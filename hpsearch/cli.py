"""The command line: ``python -m hpsearch COMMAND``.

Every command is a module with ``add_arguments(parser)`` and ``main(args) -> int``,
named once in :data:`COMMANDS`. ``build_parser`` only builds argparse; ``main(argv)``
parses, dispatches, and turns every known error into one line on stderr and exit
code 2 (a traceback only with -v).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from dataclasses import dataclass

from hpsearch import __version__
from hpsearch.errors import HPSearchError, Interrupted

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    module: str  # has add_arguments(parser) and main(args) -> int
    help: str


#: every command, in the order ``--help`` lists them
COMMANDS = {
    "run": Command("hpsearch.commands.run", "run a search: N trials of a space file, in parallel"),
    "check": Command("hpsearch.commands.check", "validate a space file and show a few sampled configurations"),
    "worker": Command("hpsearch.commands.worker", "join a running study from another machine or process"),
    "show": Command("hpsearch.analysis.show", "print the best, worst and diverged trials of a results directory"),
    "regions": Command(
        "hpsearch.analysis.regions", "where in the space training diverges: rates per bin, 2-D maps, the boundary"
    ),
    "narrow": Command(
        "hpsearch.analysis.narrow", "write a narrower space file around the best trials, away from divergence"
    ),
    "plot": Command("hpsearch.analysis.plots", "PNG figures of a study in RESULTS_DIR/plots/"),
    "export": Command(
        "hpsearch.commands.export", "save a trial's trained model (best epoch, normalizer included) as one .npz file"
    ),
    "dashboard": Command(
        "hpsearch.commands.dashboard", "serve a study in optuna-dashboard: learning curves, scores, parameters"
    ),
    "edge": Command(
        "hpsearch.analysis.edge",
        "predict the learning rate where a space starts to diverge, in seconds, before any study",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2, like every other hpsearch error."""

    def error(self, message):
        # "argument --trials/-n: --trials must be at least 1" says the option twice
        message = re.sub(r"^argument [^:]+: (?=--)", "", message)
        raise HPSearchError(f"{self.prog}: {message}")


def _add_common(p):
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final tables and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and Optuna's log")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpsearch", description="Hyperparameter search for from-scratch NumPy MLPs.")
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, command in COMMANDS.items():
        module = importlib.import_module(command.module)
        description = getattr(module, "DESCRIPTION", command.help)
        p = sub.add_parser(name, help=command.help, description=description)
        module.add_arguments(p)
        _add_common(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    _quiet_optuna(verbose)
    try:
        parser = build_parser()
        if not argv:  # a bare `hpsearch`: what it can do, not an argparse complaint
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        args = parser.parse_args(argv)
        return importlib.import_module(COMMANDS[args.command].module).main(args) or 0
    except HPSearchError as exc:
        if verbose:
            traceback.print_exc()
        print(f"hpsearch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `hpsearch show … | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        print("hpsearch: interrupted", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Interrupted) else EXIT_INTERRUPTED
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"hpsearch: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _quiet_optuna(verbose: bool) -> None:
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    ours = logging.getLogger("hpsearch")  # the storage's repairs and waits: one line each, on stderr
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("hpsearch: %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False
    if not verbose:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        logging.getLogger("optuna").setLevel(logging.ERROR)
