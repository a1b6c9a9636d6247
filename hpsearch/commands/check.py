"""``hpsearch check``: validate a space file and show what it would sample."""

from __future__ import annotations

from pathlib import Path

from hpsearch._args import whole
from hpsearch.vocabulary import SEED_MAX

HELP = "validate a space file and show a few sampled configurations"
DESCRIPTION = (
    "Check a search-space file without running anything: every rule of every key, then the parsed "
    "space and a few configurations drawn from it."
)


def add_arguments(check) -> None:
    check.add_argument("space", type=Path, help="search-space TOML file")
    check.add_argument(
        "--sample", type=whole("--sample", 0), default=3, metavar="N", help="configurations to sample (default: 3)"
    )
    check.add_argument("--seed", type=whole("--seed", 0, SEED_MAX), default=0, help="seed of the samples (default: 0)")


def main(args) -> int:
    from hpsearch.space import load_space

    space = load_space(args.space)
    s = space.study
    print(
        f"{args.space}: ok · study {s.name} · dataset {s.dataset} · {s.trials} trials × {s.epochs} epochs "
        f"· metric {s.metric} · sampler {s.sampler} · pruner {s.pruner}"
    )
    print(f"space: {space.describe()}")
    for warning in space.warnings():
        print(f"warning: {warning}")
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
