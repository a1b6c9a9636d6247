"""The one place hpsearch reaches into Optuna's private attributes.

Optuna's public API has no atomic "claim this waiting trial", no storage-level
view of a study's trials without copies, and no way to reseed a sampler per
draw; hpsearch needs all three. Every use of a private name is here, so an
Optuna upgrade is checked in one file (``pyproject.toml`` bounds the version,
and CI tests the newest release inside the bound).
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial

__all__ = ["BaseHeartbeat", "cached", "frozen", "sampler_rng", "stale_trial_ids", "storage", "study_id", "trial_id"]


def storage(study: optuna.Study) -> BaseStorage:
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def frozen(trial: optuna.Trial) -> FrozenTrial:
    """The storage's view of a live trial, as Optuna cached it when the trial object was made."""
    return trial._cached_frozen_trial


def cached(rdb: optuna.storages.RDBStorage) -> BaseStorage:
    """Optuna's caching layer over a database storage (what ``optuna.create_study(storage=URL)`` uses)."""
    from optuna.storages._cached_storage import _CachedStorage

    return _CachedStorage(rdb)


def sampler_rng(sampler: optuna.samplers.RandomSampler):
    """The numpy ``RandomState`` a random sampler draws from."""
    return sampler._rng.rng


def stale_trial_ids(storage: BaseStorage, study_id: int) -> list[int]:
    """RUNNING trials whose heartbeat is older than the grace period (a heartbeat storage)."""
    return storage._get_stale_trial_ids(study_id)
