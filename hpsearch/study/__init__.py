"""The study layer: Optuna's study, sampler, pruner and storage, and the trials hpsearch runs in them.

- ``storage``: the journal file or a database, opened so that faults lose nothing
- ``trials``: trials as configurations (slots), the claimed queue, interruptions, dead workers
- ``samplers``: samplers and pruners by their TOML names
- ``objective``: one trial, the only module that touches both an Optuna trial and the MLP core
- ``supervisor``: trial processes forked and watched by a worker
- ``session``: a ``run`` or ``worker`` from set-up to the last file; ``report``: its progress line
- ``_optuna``: every use of Optuna's private attributes, in one place

Same ``seed``, same configurations and same numbers: the default sampler draws each
parameter from (study seed, configuration slot, parameter name) and training is
seeded by (study seed, slot), whatever ``--jobs`` is and whatever interrupted the run.
"""

from hpsearch.study.samplers import TrialSeededSampler, make_pruner, make_sampler
from hpsearch.study.trials import (
    Ledger,
    claim,
    effective_trials,
    fail_stale_trials,
    finished_configurations,
    is_duplicate,
    is_interrupted,
    mark_failed,
    open_storage,
    requeue_missing,
    slot_of,
    top_up,
)

__all__ = [
    "Ledger",
    "TrialSeededSampler",
    "claim",
    "effective_trials",
    "fail_stale_trials",
    "finished_configurations",
    "is_duplicate",
    "is_interrupted",
    "make_pruner",
    "make_sampler",
    "mark_failed",
    "open_storage",
    "requeue_missing",
    "slot_of",
    "top_up",
]
