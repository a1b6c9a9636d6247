"""Test scores of a finished study's top 10: from the models the trials kept, against retraining them (as before).

python scripts/bench_score_top.py RESULTS_DIR
"""

import sys
import time
from pathlib import Path

import optuna
from threadpoolctl import threadpool_limits

import hpsearch
from hpsearch.space import load_space
from hpsearch.study import objective, rebuild, session
from hpsearch.vocabulary import MODELS_DIR, model_file


def main(d: Path) -> None:
    study = hpsearch.open(d)
    top = [int(n) for n in study.best(10)["number"]]
    prep = rebuild.prepared_data(d)
    t = time.perf_counter()
    for n in top:
        session._saved_score(d / MODELS_DIR / model_file(n), prep, "val_accuracy")
    t_load = time.perf_counter() - t
    trials = {tr.number: tr for tr in rebuild._study(d, rebuild._meta(d), None).get_trials()}
    space = load_space(d / "space.toml")
    t = time.perf_counter()
    with threadpool_limits(1):
        for n in top:
            tr = trials[n]
            config = space.suggest(optuna.trial.FixedTrial(tr.params, tr.number))
            objective.test_score(
                config, prep, epochs=tr.user_attrs["best_epoch"], metric="val_accuracy", seed=tr.user_attrs["seed"]
            )
    t_retrain = time.perf_counter() - t
    t = time.perf_counter()
    study.model(int(study.worst(1)["number"].iloc[0]))
    t_rebuild = time.perf_counter() - t
    t = time.perf_counter()
    _ = hpsearch.open(d).trials
    t_open = time.perf_counter() - t
    print(
        f"top 10: kept models {t_load * 1000:.1f} ms; retraining in one process (as before) {t_retrain * 1000:.0f} "
        f"ms; rebuild the worst trial {t_rebuild * 1000:.0f} ms; open + trials {t_open * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
