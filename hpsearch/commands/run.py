"""``hpsearch run``: run or resume a search of a space file, in parallel trial processes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from hpsearch._args import add_workers, whole
from hpsearch.vocabulary import PRUNERS, RESULT_FILES, SAMPLERS, SEED_MAX

HELP = "run a search: N trials of a space file, in parallel"
DESCRIPTION = (
    "Run (or resume) a search. Running the same command again resumes the study up to --trials; "
    "Ctrl-C stops cleanly and keeps what finished."
)


def add_arguments(run) -> None:
    run.add_argument("space", type=Path, help="search-space TOML file")
    run.add_argument(
        "--trials",
        "-n",
        type=whole("--trials", 1),
        default=None,
        help="total trials of the study (default: [study] trials in the file)",
    )
    add_workers(run)
    run.add_argument(
        "--seed", type=whole("--seed", 0, SEED_MAX), default=None, help="study seed (default: [study] seed)"
    )
    run.add_argument(
        "--dataset", default=None, help="data set: digits, mnist:DIR, npz:FILE, csv:FILE (default: [study] dataset)"
    )
    run.add_argument(
        "--epochs", type=whole("--epochs", 1), default=None, help="epochs per trial (default: [study] epochs)"
    )
    run.add_argument("--name", default=None, help="study name and results sub-directory (default: [study] name)")
    run.add_argument("--out", type=Path, default=Path("results"), help="results root directory (default: results/)")
    run.add_argument(
        "--storage",
        default=None,
        help="an Optuna storage URL, e.g. postgresql://user@host/db, or a journal file "
        "(journal:PATH) (default: a journal file in the results directory)",
    )
    run.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="how configurations are drawn: random (reproducible per trial number), tpe (Bayesian, "
        "learns from finished trials), qmc (quasi-random) (default: [study] sampler, else random)",
    )
    run.add_argument(
        "--pruner",
        choices=PRUNERS,
        default=None,
        help="stop weak trials early on the per-epoch validation metric (default: [study] pruner, else none)",
    )
    run.add_argument(
        "--patience",
        type=whole("--patience", 0),
        default=None,
        metavar="EPOCHS",
        help="stop a trial after this many epochs without a better validation metric; its value stays "
        "its best epoch's (default: [study] patience, else 0: never)",
    )
    run.add_argument(
        "--test-top",
        type=whole("--test-top", 0),
        default=None,
        metavar="K",
        help="score the best K runs on the test set at the end (default: [study] test_top, else 10)",
    )


def main(args) -> int:
    from hpsearch.space import load_space
    from hpsearch.study import session as runner
    from hpsearch.study.supervisor import require_fork

    space = load_space(args.space)
    require_fork("hpsearch run")
    jobs = args.jobs or runner.default_jobs()
    overrides = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "name": args.name,
        "seed": args.seed,
        "sampler": args.sampler,
        "pruner": args.pruner,
        "test_top": args.test_top,
        "patience": args.patience,
    }
    n_trials = args.trials or space.study.trials
    rep = runner.Reporter(quiet=args.quiet)
    with runner.Signals() as signals:
        ctx = runner.setup_run(space, overrides, out=args.out, storage_url=args.storage, n_trials=n_trials)
        with signals.deferred():
            return _run_study(args, ctx, jobs, n_trials, rep, signals)


def _run_study(args, ctx, jobs: int, n_trials: int, rep, signals) -> int:
    """Run the trials, score the best, write the files (on every way out), and print the tables."""
    from hpsearch.results import summary_text
    from hpsearch.study import session as runner

    finished, df = runner.run_study(ctx, jobs, args.trial_timeout, rep, signals, n_trials)
    if not args.quiet:
        print()
    print(summary_text(df, metric=ctx.settings.metric, params=ctx.space.param_names()), end="")
    print(f"\nResults: {ctx.results_dir}/ ({', '.join(RESULT_FILES)})")
    if not finished:
        print(
            "Interrupted. Finished trials are kept; run this command to resume:\n  " + resume_command(args, n_trials),
            file=sys.stderr,
        )
        return signals.exit_code
    print(f"Next: python -m hpsearch regions {ctx.results_dir}")
    return 0


def resume_command(args, n_trials: int) -> str:
    """The command that resumes this very study: every option that chose it, as given."""
    from hpsearch.study.storage import mask_url

    parts = ["python", "-m", "hpsearch", "run", str(args.space), "--trials", str(n_trials)]
    for flag, value in (
        ("--epochs", args.epochs),
        ("--dataset", args.dataset),
        ("--name", args.name),
        ("--seed", args.seed),
        ("--sampler", args.sampler),
        ("--pruner", args.pruner),
        ("--test-top", args.test_top),
        ("--patience", args.patience),
        ("--jobs", args.jobs),
        ("--trial-timeout", args.trial_timeout),
    ):
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
