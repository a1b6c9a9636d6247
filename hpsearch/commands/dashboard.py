"""``hpsearch dashboard``: serve a study with optuna-dashboard (the optional extra ``hpsearch[dashboard]``)."""

from __future__ import annotations

HELP = "serve a study in optuna-dashboard: learning curves, scores, parameters (pip install 'hpsearch[dashboard]')"
DESCRIPTION = (
    "Serve the study of RESULTS_DIR with optuna-dashboard, on this machine only unless --host says "
    "otherwise. Each trial's learning curve is shown as its intermediate values, the objective is "
    "named after the metric, and the test scores and constants are trial attributes. Nothing is "
    "written to the study; a running study is followed every few seconds."
)


def add_arguments(p) -> None:
    from hpsearch._args import add_results_dir, whole

    add_results_dir(p)
    p.add_argument("--port", "-p", type=whole("--port", 1), default=8080, help="port to listen on (default: 8080)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="the study's storage URL, for a study kept in a database (default: the journal file in RESULTS_DIR)",
    )


def main(args) -> int:
    from hpsearch.errors import HPSearchError
    from hpsearch.study.dashboard import serve

    if args.port > 65535:
        raise HPSearchError(f"--port must be at most 65535, got {args.port}")
    serve(
        args.results_dir,
        host=args.host,
        port=args.port,
        storage=args.storage,
        announce=lambda line: print(line, flush=True),
    )
    return 0
