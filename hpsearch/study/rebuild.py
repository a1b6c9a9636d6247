"""Any completed trial's model, rebuilt: same split, same normalizer, same seed, same weights.

Training is deterministic for a seed, the trial seed derives from the study seed
and the configuration's slot (stored with the trial), and the normalizer is fitted
on the training part of the study's seeded split; so a trial's best-epoch network
comes back exactly. The rebuilt model is checked against the validation value the
trial recorded.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from threadpoolctl import threadpool_limits

from hpsearch import data as datasets
from hpsearch.errors import DataError, ResultsError
from hpsearch.model import Model
from hpsearch.study import objective
from hpsearch.vocabulary import ATTR_SOURCE, JOURNAL_FILE, SPACE_FILE

#: how far a rebuilt model's validation value may sit from the recorded one (float32 rounding of a loss)
TOLERANCE = 1e-6


def _meta(results_dir: Path) -> dict:
    from hpsearch.results import read_meta

    meta = read_meta(results_dir)
    missing = [k for k in ("name", "dataset", "validation", "seed", "epochs", "metric") if k not in meta]
    if missing:
        raise ResultsError(f"{results_dir}: meta.json lacks {', '.join(missing)}, so no model can be rebuilt")
    return meta


def prepared_data(results_dir, meta: dict | None = None, source: str | None = None) -> objective.Prepared:
    """The study's data, split and ready as its trials saw them."""
    results_dir = Path(results_dir)
    meta = meta or _meta(results_dir)
    root = None
    if source and Path(source).parent.is_dir():  # a relative data path was relative to the space file
        root = Path(source).parent
    try:
        dataset = datasets.load(meta["dataset"], root=root)
    except DataError:
        if root is None:
            raise
        dataset = datasets.load(meta["dataset"])
    return objective.prepare(dataset, meta["validation"], meta["seed"])


def _study(results_dir: Path, meta: dict, storage: str | None) -> optuna.Study:
    from hpsearch.study import storage as stores

    if storage is None:
        journal = results_dir / JOURNAL_FILE
        if not journal.is_file():
            raise ResultsError(
                f"{results_dir}: no {JOURNAL_FILE}; pass storage=URL (the study's database) to rebuild a model"
            )
        backend = stores.journal(journal)
    else:
        backend = stores.open_storage(storage, results_dir)
    return optuna.load_study(study_name=meta["name"], storage=backend)


def rebuild(results_dir, number: int, *, storage: str | None = None) -> Model:
    """Retrain completed trial ``number`` of a study and return its best-epoch model (as long as the trial took)."""
    from hpsearch.space import load_space

    results_dir = Path(results_dir)
    meta = _meta(results_dir)
    study = _study(results_dir, meta, storage)
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not found or found[0].state != optuna.trial.TrialState.COMPLETE or found[0].value is None:
        raise ResultsError(f"{results_dir}: trial {number} is not a completed trial of study {meta['name']!r}")
    t = found[0]
    space = load_space(results_dir / SPACE_FILE)
    config = space.suggest(optuna.trial.FixedTrial(t.params, t.number))
    seed = int(t.user_attrs["seed"])
    prepared = prepared_data(results_dir, meta, study.user_attrs.get(ATTR_SOURCE))
    with threadpool_limits(1):  # as the trial ran: one BLAS thread, the same sums in the same order
        history = objective.retrain(
            config, prepared, epochs=t.user_attrs.get("best_epoch") or meta["epochs"], metric=meta["metric"], seed=seed
        )
    value = history.best_value
    if value is None or not math.isfinite(value) or abs(value - t.value) > TOLERANCE:
        raise ResultsError(
            f"{results_dir}: trial {number} rebuilt gives {meta['metric']} {value}, but the trial "
            f"recorded {t.value}; the data set or hpsearch changed since the study ran"
        )
    info = {
        "study": meta["name"],
        "trial": number,
        "metric": meta["metric"],
        "value": value,
        "best_epoch": history.best_epoch,
        "seed": seed,
    }
    return objective.as_model(history.model, config, prepared, info)
