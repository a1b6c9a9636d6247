"""The command line: ``python -m hpsearch {run,check,worker,show,regions,narrow,plot}``.

``build_parser`` only builds argparse; ``main(argv)`` parses, dispatches, and turns
every known error into one line on stderr and exit code 2 (a traceback only with -v).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

from hpsearch import __version__
from hpsearch._args import positive, whole
from hpsearch.errors import HPSearchError, Interrupted

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Analysis commands live with their module; each module has add_arguments(parser) and main(args).
ANALYSIS = {
    "show": ("hpsearch.show", "print the best, worst and diverged trials of a results directory"),
    "regions": ("hpsearch.regions", "where in the space training diverges: rates per bin, 2-D maps, the boundary"),
    "narrow": ("hpsearch.narrow", "write a narrower space file around the best trials, away from divergence"),
    "plot": ("hpsearch.plots", "PNG figures of a study in RESULTS_DIR/plots/"),
    "edge": ("hpsearch.edge", "predict the learning rate where a space starts to diverge, in seconds, before any study"),
}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2, like every other hpsearch error."""

    def error(self, message):
        raise HPSearchError(f"{self.prog.split()[-1]}: {message}")


def _add_common(p):
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final tables and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and Optuna's log")


def _add_workers(p):
    p.add_argument("--jobs", "-j", type=whole("--jobs", 1), default=None,
                   help="trials run at once, each in its own process (default: all cores)")
    p.add_argument("--trial-timeout", type=positive("--trial-timeout"), default=None, metavar="SECONDS",
                   help="stop a trial after this many seconds and record it as failed (default: no limit)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpsearch", description="Hyperparameter search for from-scratch NumPy MLPs.")
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="run a search: N trials of a space file, in parallel",
                         description="Run (or resume) a search. Running the same command again resumes the "
                                     "study up to --trials; Ctrl-C stops cleanly and keeps what finished.")
    run.add_argument("space", type=Path, help="search-space TOML file")
    run.add_argument("--trials", "-n", type=whole("--trials", 1), default=None,
                     help="total trials of the study (default: [study] trials in the file)")
    _add_workers(run)
    run.add_argument("--seed", type=int, default=None, help="study seed (default: [study] seed)")
    run.add_argument("--dataset", default=None,
                     help="data set: digits, mnist:DIR, npz:FILE, csv:FILE (default: [study] dataset)")
    run.add_argument("--epochs", type=whole("--epochs", 1), default=None, help="epochs per trial (default: [study] epochs)")
    run.add_argument("--name", default=None, help="study name and results sub-directory (default: [study] name)")
    run.add_argument("--out", type=Path, default=Path("results"), help="results root directory (default: results/)")
    run.add_argument("--storage", default=None,
                     help="an Optuna storage URL, e.g. postgresql://user@host/db (default: a journal file in the results directory)")
    run.add_argument("--sampler", choices=["random", "tpe", "qmc"], default=None, help="how configurations are drawn: random (reproducible per trial number), tpe (Bayesian, "
                          "learns from finished trials), qmc (quasi-random) (default: [study] sampler, else random)")
    run.add_argument("--pruner", choices=["none", "median", "hyperband"], default=None,
                     help="stop weak trials early on the per-epoch validation metric (default: [study] pruner, else none)")
    run.add_argument("--test-top", type=whole("--test-top", 0), default=None, metavar="K",
                     help="score the best K runs on the test set at the end (default: [study] test_top, else 10)")
    _add_common(run)

    check = sub.add_parser("check", help="validate a space file and show a few sampled configurations")
    check.add_argument("space", type=Path, help="search-space TOML file")
    check.add_argument("--sample", type=int, default=3, metavar="N", help="configurations to sample (default: 3)")
    check.add_argument("--seed", type=int, default=0, help="seed of the samples (default: 0)")
    _add_common(check)

    worker = sub.add_parser("worker", help="join a running study from another machine or process",
                            description="Work on a study whose space is stored with it: claim queued trials "
                                        "until none is left. One command per machine.")
    worker.add_argument("--storage", required=True, help="the study's Optuna storage URL (or journal:PATH)")
    worker.add_argument("--study", required=True, help="study name")
    worker.add_argument("--out", type=Path, default=None, help="also write result files under OUT/<study>/")
    _add_workers(worker)
    _add_common(worker)

    for name, (module, help_text) in ANALYSIS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError:
            p.add_argument("results_dir", type=Path)
        _add_common(p)
    return parser


def cmd_check(args) -> int:
    from hpsearch.space import load_space

    space = load_space(args.space)
    s = space.study
    print(f"{args.space}: ok · study {s.name} · dataset {s.dataset} · {s.trials} trials × {s.epochs} epochs "
          f"· metric {s.metric} · sampler {s.sampler} · pruner {s.pruner}")
    print(f"space: {space.describe()}")
    if space.constants():
        print("constants: " + ", ".join(f"{k}={v}" for k, v in space.constants().items()))
    if args.sample > 0:
        print(f"\n{args.sample} sampled configurations (seed {args.seed}):")
        for i, cfg in enumerate(space.sample(args.sample, args.seed)):
            print(f"  {i}: " + ", ".join(f"{k}={_short(v)}" for k, v in cfg.items() if k not in space.constants()))
    return 0


def _short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def cmd_run(args) -> int:
    from hpsearch.study import session as runner
    from hpsearch.space import load_space

    space = load_space(args.space)
    jobs = args.jobs or runner.default_jobs()
    overrides = {"dataset": args.dataset, "epochs": args.epochs, "name": args.name, "seed": args.seed,
                 "sampler": args.sampler, "pruner": args.pruner, "test_top": args.test_top}
    n_trials = args.trials or space.study.trials
    rep = runner.Reporter(quiet=args.quiet)
    with runner.Signals() as signals:
        ctx = runner.setup_run(space, overrides, out=args.out, storage_url=args.storage, n_trials=n_trials)
        with signals.deferred():
            return _run_study(args, ctx, jobs, n_trials, rep, signals)


def _run_study(args, ctx, jobs: int, n_trials: int, rep, signals) -> int:
    """Run the trials, score the best, and write the files on every way out."""
    from hpsearch.study import session as runner
    from hpsearch.errors import StorageError
    from hpsearch.results import summary_text

    for line in runner.header(ctx, jobs):
        rep.say(line)
    done_before = runner.st.effective_trials(ctx.study)["finished"]
    if done_before:
        rep.say(f"resuming: {done_before} of {n_trials} trials already finished")
    rep.say()
    failure = None
    finished = False
    try:
        finished = runner.work(ctx, jobs, args.trial_timeout, rep, signals, total=n_trials)
        if finished:
            for note in runner.score_top(ctx, ctx.settings.test_top, jobs, signals):
                rep.say(f"note: {note}")
    except StorageError as exc:
        failure = exc
    try:
        df = ctx.export()
    except (StorageError, OSError) as exc:  # the disk is full: the storage still holds every result
        failure = failure or exc
        df = None
    if failure is not None:
        raise failure if isinstance(failure, HPSearchError) else HPSearchError(_os_error_line(failure))
    print()
    print(summary_text(df, metric=ctx.settings.metric, params=ctx.space.param_names()), end="")
    files = ", ".join(f for f in ("trials.csv", "curves.csv", "divergence.csv", "summary.md"))
    print(f"\nResults: {ctx.results_dir}/ ({files})")
    if not finished or signals.received:
        print("Interrupted. Finished trials are kept; run this command to resume:\n  "
              + resume_command(args, n_trials), file=sys.stderr)
        return signals.exit_code
    print(f"Next: python -m hpsearch regions {ctx.results_dir}")
    return 0


def resume_command(args, n_trials: int) -> str:
    """The command that resumes this very study: every option that chose it, as given."""
    import shlex

    from hpsearch.study.storage import mask_url

    parts = ["python", "-m", "hpsearch", "run", str(args.space), "--trials", str(n_trials)]
    for flag, value in (("--epochs", args.epochs), ("--dataset", args.dataset), ("--name", args.name),
                        ("--seed", args.seed), ("--sampler", args.sampler), ("--pruner", args.pruner),
                        ("--test-top", args.test_top), ("--jobs", args.jobs),
                        ("--trial-timeout", args.trial_timeout)):
        if value is not None:
            parts += [flag, str(value)]
    if Path(args.out) != Path("results"):
        parts += ["--out", str(args.out)]
    if args.storage is not None:
        parts += ["--storage", mask_url(args.storage)]
    text = " ".join(shlex.quote(p) for p in parts)
    if args.storage is not None and mask_url(args.storage) != args.storage:
        text += "   (with the storage password in place of ***)"
    return text


def _os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return f"{where}{exc.strerror or exc}"


def cmd_worker(args) -> int:
    from hpsearch.study import session as runner

    jobs = args.jobs or runner.default_jobs()
    rep = runner.Reporter(quiet=args.quiet)
    with runner.Signals() as signals:
        ctx = runner.setup_worker(args.storage, args.study, args.out)
        with signals.deferred():
            for line in runner.header(ctx, jobs):
                rep.say(line)
            try:
                finished = runner.work(ctx, jobs, args.trial_timeout, rep, signals)
            finally:
                if ctx.results_dir is not None:
                    ctx.export()
            c = runner.st.effective_trials(ctx.study)
            rep.say(f"study {args.study}: {c['finished']} finished, {c['RUNNING']} running, {c['WAITING']} waiting")
            return 0 if finished else signals.exit_code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    _quiet_optuna(verbose)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "worker":
            return cmd_worker(args)
        return importlib.import_module(ANALYSIS[args.command][0]).main(args) or 0
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
        print(f"hpsearch: {_os_error_line(exc)}", file=sys.stderr)
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
