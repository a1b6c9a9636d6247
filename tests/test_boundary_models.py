"""The boundary that predicts a fresh study: a per-category edge where the edge moves with a category."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fixtures.analysis.studies import make_study

from hpsearch.analysis._boundary import Boundary, CategoryEdges, best_boundary, event, finished
from hpsearch.analysis.regions import check
from hpsearch.results import open_results


def test_an_edge_that_moves_with_a_category_is_fitted_per_category_and_predicts_a_fresh_study(tmp_path):
    # the synthetic study: training fails when lr > 1.0 with min_max, > 0.3 with z_score
    a = open_results(make_study(tmp_path, "a", n=120, seed=0))
    b = open_results(make_study(tmp_path, "b", n=120, seed=1))
    model = best_boundary(a, a.trials, ["lr", "normalizer"])
    assert isinstance(model, CategoryEdges) and model.cat == "normalizer", model
    cuts = {k: 10**t for k, (t, low, high) in model.cuts.items()}
    assert 0.6 < cuts["min_max"] < 1.6 and 0.15 < cuts["z_score"] < 0.5, cuts
    assert "chosen over the decision tree by cross-validation" in model.about
    result = check(a, a.trials, ["lr", "normalizer"], b, b.trials)
    fin = finished(b.trials)
    truth = event(fin).astype(bool)
    assert result["accuracy"] == (model.predict(fin) == truth).mean() >= 0.9
    assert result["accuracy"] > result["edge"]["accuracy"]  # better than the one-parameter edge alone


def test_the_tree_stays_where_one_threshold_fits_every_category(tmp_path):
    res = open_results(make_study(tmp_path, "c", n=120, seed=2, only="min_max"))
    model = best_boundary(res, res.trials, ["lr", "batch_size"])
    assert isinstance(model, Boundary), model  # no category: nothing to fit per category


def test_a_category_the_fitted_study_never_saw_gets_the_majority_verdict(tmp_path):
    res = open_results(make_study(tmp_path, "d", n=120, seed=3))
    fin = finished(res.trials)
    model = CategoryEdges.fit(res, fin, "normalizer", "lr")
    other = fin.head(5).copy()
    other["normalizer"] = "robust"  # unseen
    assert (model.predict(other) == np.full(5, model.default)).all()
    assert isinstance(model.predict(pd.DataFrame({"lr": [0.1]})), np.ndarray)
