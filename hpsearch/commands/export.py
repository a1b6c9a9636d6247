"""``hpsearch export``: write a trial's trained model to one ``.npz`` file that loads without Optuna."""

from __future__ import annotations

from pathlib import Path

from hpsearch._args import add_results_dir, whole

HELP = "save a trial's trained model (best epoch, normalizer included) as one .npz file"
DESCRIPTION = (
    "Save the trained model of a trial (default: the best) at its best epoch, with the normalizer "
    "fitted on its training data, as one .npz file. The top runs' models are kept by the study; "
    "any other completed trial is retrained from its seed (as long as the trial took). "
    "Load it with hpsearch.load_model(FILE)."
)


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument(
        "--trial",
        "-t",
        type=whole("--trial", 0, what="a trial number"),
        default=None,
        metavar="N",
        help="the trial number (default: the best completed trial)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="the .npz file to write (default: trial-N.npz in the current directory)",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="the study's storage URL, for a study kept in a database (default: the journal file in RESULTS_DIR)",
    )


def main(args) -> int:
    import hpsearch
    from hpsearch.errors import HPSearchError

    study = hpsearch.open(args.results_dir, storage=args.storage)
    model = study.model(args.trial)
    number = model.info.get("trial", args.trial)
    out = args.output or Path(f"trial-{number}.npz")
    if out.suffix != ".npz":
        raise HPSearchError(f"-o {out}: a model file ends in .npz")
    if not out.parent.is_dir():
        raise HPSearchError(f"-o {out}: no such directory {out.parent}")
    model.save(out)
    row = study.trials.set_index("number").loc[number]
    test = row.get("test_accuracy")
    scores = f"{study.metric} {row['value']:.4f}" + (f", test_accuracy {test:.4f}" if test == test else "")
    print(f"Wrote {out}: trial {number} of {study.name} ({scores}, best epoch {int(row['best_epoch'])})")
    print(f"  {model!r}")
    print(f"Load it with: hpsearch.load_model({str(out)!r}).predict(x)   # x: raw inputs, {model.n_features} features")
    return 0
