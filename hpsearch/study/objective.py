"""One trial: a sampled configuration trained on prepared data, recorded in the study.

This is the only module that touches both an Optuna trial and the MLP core; it
turns a configuration into ``hpsearch.mlp.train`` arguments and the outcome into
trial attributes. Every trial gets an ``outcome`` (``hpsearch.vocabulary.OUTCOMES``): a
run that learned is COMPLETE; one that failed — diverged (with its trace), died (a dead
hidden layer, stopped at once), collapsed or stalled at chance — is recorded as a pruned
trial with its kind as ``prune_reason``, so no sampler ranks it above one that learned.
Any other exception is left to the caller, which records a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import optuna

from hpsearch import data as datasets
from hpsearch.errors import Dead, Diverged
from hpsearch.mlp import TRACE_COLUMNS, MLPConfig, train
from hpsearch.mlp._outcome import OK, chance_level, classify
from hpsearch.vocabulary import ATTR_OUTCOME, DATA_DEFAULTS, DATA_KEYS


@dataclass(frozen=True)
class Prepared:
    """The arrays every trial of a study trains on (split once, shared by all trials)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    n_classes: int
    _normalized: dict = field(default_factory=dict, repr=False, compare=False)
    _normalizers: dict = field(default_factory=dict, repr=False, compare=False)
    class_names: tuple = ()

    def normalizer(self, normalizer: str, axis: str) -> datasets.Normalizer:
        """The normalizer fitted on the training part: what a saved model carries to scale raw inputs."""
        key = (normalizer, axis)
        if key not in self._normalizers:
            self._normalizers[key] = datasets.fit_normalizer(normalizer, axis, self.x_train)
        return self._normalizers[key]

    def normalized(self, normalizer: str, axis: str) -> tuple:
        """(train, val, test) inputs scaled by a normalizer fitted on the training part.

        Kept for the next trial that asks: the supervisor fills this before it forks,
        so every trial process reads the same pages instead of scaling its own copy.
        """
        key = (normalizer, axis)
        if key not in self._normalized:
            if len(self._normalized) >= 4:  # at most 3 normalizers x 2 axes are possible; bound memory anyway
                self._normalized.pop(next(iter(self._normalized)))
            norm = datasets.fit_normalizer(normalizer, axis, self.x_train)
            arrays = tuple(None if x is None else norm(x) for x in (self.x_train, self.x_val, self.x_test))
            for x in arrays:
                if x is not None:
                    x.flags.writeable = False
            self._normalized[key] = arrays
        return self._normalized[key]


def prepare(dataset: datasets.Dataset, validation: float, seed: int) -> Prepared:
    """Carve the stratified validation split out of the training data."""
    x_tr, y_tr, x_val, y_val = datasets.split(dataset.x_train, dataset.y_train, validation, seed)
    return Prepared(
        x_tr,
        y_tr,
        x_val,
        y_val,
        dataset.x_test,
        dataset.y_test,
        dataset.n_classes,
        class_names=tuple(dataset.class_names),
    )


def trial_seed(study_seed: int, number: int) -> int:
    """The training seed of trial ``number``: a function of the study seed and the number only."""
    return int(np.random.SeedSequence([int(study_seed), int(number)]).generate_state(1)[0])


def split_config(config: dict) -> tuple[dict, dict]:
    """Split a flat configuration into (data options, MLP options)."""
    data_opts = {k: config.get(k, v) for k, v in DATA_DEFAULTS.items()}
    mlp_opts = {k: v for k, v in config.items() if k not in DATA_KEYS}
    return data_opts, mlp_opts


def build(config: dict, prepared: Prepared, *, epochs: int, seed: int, patience: int = 0):
    """(MLPConfig, normalized train/val/test arrays) for one configuration."""
    data_opts, mlp_opts = split_config(config)
    mlp_opts.setdefault("epochs", epochs)
    mlp_opts.setdefault("patience", patience)
    mlp_opts["seed"] = seed
    mlp_config = MLPConfig.from_dict(mlp_opts)
    x_tr, x_val, x_test = prepared.normalized(data_opts["normalizer"], data_opts["norm_axis"])
    return mlp_config, x_tr, x_val, x_test


def _train(mlp_config, x_tr, x_val, prepared: Prepared, **options):
    return train(mlp_config, x_tr, prepared.y_train, x_val, prepared.y_val, n_classes=prepared.n_classes, **options)


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def run_trial(
    trial: optuna.Trial,
    config: dict,
    prepared: Prepared,
    *,
    epochs: int,
    metric: str,
    seed: int,
    prune: bool,
    keep=None,
    patience: int = 0,
) -> tuple[optuna.trial.TrialState, float | None]:
    """Train one configuration, report every epoch, and record the outcome as user attributes.

    Returns the state and value to ``tell`` the study. Raises for anything that is
    neither a normal end, a divergence, nor a pruner's decision. ``keep``, if given,
    is called with the History (its model at the best epoch) when the trial completes
    (the run saves it as a model file).
    """
    mlp_config, x_tr, x_val, _ = build(config, prepared, epochs=epochs, seed=seed, patience=patience)
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("hidden", list(mlp_config.hidden))
    trial.set_user_attr("chance", chance_level(prepared.y_val, prepared.n_classes))  # what a constant answer scores
    curve: list[list] = []

    def on_epoch(epoch: int, metrics: dict) -> None:
        curve.append(
            [epoch]
            + [_finite_or_none(metrics.get(k)) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")]
        )
        if not prune:  # the curve holds every epoch; a storage write per epoch only serves a pruner
            return
        trial.report(float(metrics[metric]), epoch)
        if trial.should_prune():
            trial.set_user_attr("curve", curve)
            trial.set_user_attr("prune_reason", "pruner")
            trial.set_user_attr("stop_epoch", epoch)
            raise optuna.TrialPruned(f"pruned by the pruner at epoch {epoch}")

    try:
        history = _train(
            mlp_config, x_tr, x_val, prepared, metric=metric, on_epoch=on_epoch, keep_best=keep is not None
        )
    except Diverged as div:
        trial.set_user_attr("curve", curve)
        trial.set_user_attr("prune_reason", div.reason)
        trial.set_user_attr("div_epoch", div.epoch)
        trial.set_user_attr("div_step", div.step)
        trial.set_user_attr("div_where", div.where)
        trial.set_user_attr("trace", [[_finite_or_none(row.get(c)) for c in TRACE_COLUMNS] for row in div.trace])
        trial.set_user_attr(ATTR_OUTCOME, div.reason)
        return optuna.trial.TrialState.PRUNED, None
    except Dead as dead:  # certain, so stopped at once: a failure like divergence, never ranked
        trial.set_user_attr("curve", curve)
        trial.set_user_attr("prune_reason", dead.reason)
        trial.set_user_attr(ATTR_OUTCOME, dead.reason)
        trial.set_user_attr("div_epoch", dead.epoch)
        trial.set_user_attr("div_step", dead.step)
        trial.set_user_attr("div_where", dead.where)
        return optuna.trial.TrialState.PRUNED, None
    except optuna.TrialPruned:
        trial.set_user_attr(ATTR_OUTCOME, _outcome_of(curve, prepared, mlp_config))
        return optuna.trial.TrialState.PRUNED, None

    trial.set_user_attr("curve", curve)
    trial.set_user_attr("best_epoch", history.best_epoch)
    trial.set_user_attr("steps", history.steps)
    if history.stopped_early is not None:
        trial.set_user_attr("stopped_early", history.stopped_early)
    if history.notes:
        trial.set_user_attr("notes", list(history.notes))
    value = _finite_or_none(history.best_value)
    if value is None:  # a metric that cannot rank the trial is no result
        trial.set_user_attr("prune_reason", "nan")
        trial.set_user_attr(ATTR_OUTCOME, "nan")
        return optuna.trial.TrialState.PRUNED, None
    trial.set_user_attr(ATTR_OUTCOME, history.outcome)
    if history.outcome != OK:  # at chance at the end: recorded like a divergence, so it never outranks a learner
        trial.set_user_attr("prune_reason", history.outcome)
        trial.set_user_attr("final_value", value)
        return optuna.trial.TrialState.PRUNED, None
    if keep is not None:
        keep(history)
    return optuna.trial.TrialState.COMPLETE, value


def _outcome_of(curve: list[list], prepared: Prepared, mlp_config) -> str:
    """The outcome of a run the pruner stopped, from the epochs it ran."""
    epochs = [{"train_loss": r[1], "val_accuracy": r[4]} for r in curve]
    return classify(epochs, chance_level(prepared.y_val, prepared.n_classes), prepared.n_classes, mlp_config.loss)


def as_model(network, config: dict, prepared: Prepared, info: dict | None = None):
    """A :class:`hpsearch.model.Model`: the trained network behind the normalizer of its configuration."""
    from hpsearch.model import Model

    data_opts, _ = split_config(config)
    norm = prepared.normalizer(data_opts["normalizer"], data_opts["norm_axis"])
    return Model(network, norm, prepared.class_names, info)


def retrain(config: dict, prepared: Prepared, *, epochs: int, metric: str, seed: int):
    """Train one configuration again with its trial's seed; the History's model is at its best epoch.

    Training is deterministic for a seed, so this reproduces the trial exactly
    (``history.best_value`` lets the caller check that it did).
    """
    mlp_config, x_tr, x_val, _ = build(config, prepared, epochs=epochs, seed=seed)
    return _train(mlp_config, x_tr, x_val, prepared, metric=metric, keep_best=True)


def test_score(config: dict, prepared: Prepared, *, epochs: int, metric: str, seed: int, keep=None) -> dict:
    """Retrain one configuration with its trial's seed and score the best-epoch model on the test set.

    The returned ``val`` lets the caller check that the retraining reproduced the
    trial; ``keep``, if given, is called with the History of the retraining.
    """
    history = retrain(config, prepared, epochs=epochs, metric=metric, seed=seed)
    if keep is not None:
        keep(history)
    data_opts, _ = split_config(config)
    _, _, x_test = prepared.normalized(data_opts["normalizer"], data_opts["norm_axis"])
    scores = history.model.evaluate(x_test, prepared.y_test)
    return {
        "test_accuracy": float(scores["accuracy"]),
        "test_loss": _finite_or_none(scores["loss"]),
        "val": _finite_or_none(history.best_value),
    }
