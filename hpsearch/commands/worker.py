"""``hpsearch worker``: join a study whose space is stored with it, from another process or machine."""

from __future__ import annotations

from pathlib import Path

from hpsearch._args import add_workers

HELP = "join a running study from another machine or process"
DESCRIPTION = (
    "Work on a study whose space is stored with it: claim queued trials until none is left. One command per machine."
)


def add_arguments(worker) -> None:
    worker.add_argument(
        "--storage",
        required=True,
        help="the study's storage: an Optuna URL, journal:PATH, or the path of its journal file",
    )
    worker.add_argument("--study", required=True, help="study name")
    worker.add_argument("--out", type=Path, default=None, help="also write result files under OUT/<study>/")
    add_workers(worker)


def main(args) -> int:
    from hpsearch.study import session as runner
    from hpsearch.study.supervisor import require_fork

    require_fork("hpsearch worker")
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
