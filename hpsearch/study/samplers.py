"""How configurations are drawn and weak trials stopped: Optuna's samplers and pruners, by their TOML names."""

from __future__ import annotations

import zlib

import optuna

from hpsearch.errors import HPSearchError
from hpsearch.study import _optuna
from hpsearch.study.trials import slot_of
from hpsearch.vocabulary import PRUNERS, SAMPLERS


class TrialSeededSampler(optuna.samplers.RandomSampler):
    """Random / log-uniform sampling where each draw depends only on (seed, configuration slot, name).

    Optuna's ``RandomSampler`` draws from one stream, so which trial gets which
    configuration depends on the order trials start in. Reseeding per draw makes
    configuration *k* the same whatever the number of workers, and whatever
    interrupted the trials that ran it before.
    """

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)
        self._base_seed = int(seed)

    def sample_independent(self, study, trial, param_name, param_distribution):
        key = f"{self._base_seed}:{slot_of(trial)}:{param_name}".encode()
        _optuna.sampler_rng(self).seed(zlib.crc32(key))
        return super().sample_independent(study, trial, param_name, param_distribution)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return TrialSeededSampler(seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    raise HPSearchError(f"unknown sampler {name!r} (allowed: {', '.join(SAMPLERS)})")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 5))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    raise HPSearchError(f"unknown pruner {name!r} (allowed: {', '.join(PRUNERS)})")
