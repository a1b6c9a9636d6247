"""Early stopping: ``patience`` epochs without a better validation metric end a trial; its value stays its best."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from hpsearch import cli
from hpsearch.data import load
from hpsearch.errors import SpaceError
from hpsearch.mlp import MLPConfig, train
from hpsearch.space import parse_space


@pytest.fixture(scope="module")
def digits():
    ds = load("digits")
    return ds.x_train / 16.0, ds.y_train, ds.x_test / 16.0, ds.y_test


@pytest.mark.parametrize("patience", [1, 3, 6])
def test_training_stops_after_patience_epochs_without_a_better_metric(digits, patience):
    config = MLPConfig(hidden=(32,), lr=0.1, epochs=80, seed=1, patience=patience)
    h = train(config, *digits)
    assert h.stopped_early is not None, "the run never stopped early"
    assert len(h.epochs) == h.stopped_early == h.best_epoch + patience < 80
    values = [e["val_accuracy"] for e in h.epochs]
    assert max(values) == h.best_value == values[h.best_epoch - 1]
    assert all(v <= h.best_value for v in values[h.best_epoch :])  # nothing better came after the best


def test_a_run_with_patience_is_the_same_run_up_to_where_it_stops(digits):
    full = train(MLPConfig(hidden=(32,), lr=0.1, epochs=40, seed=2), *digits)
    early = train(MLPConfig(hidden=(32,), lr=0.1, epochs=40, seed=2, patience=2), *digits)
    n = len(early.epochs)
    assert n < 40
    assert [e["val_accuracy"] for e in early.epochs] == [e["val_accuracy"] for e in full.epochs[:n]]


def test_keep_best_gives_the_best_epochs_weights_after_an_early_stop(digits):
    x, y, xv, yv = digits
    h = train(MLPConfig(hidden=(32,), lr=0.1, epochs=80, seed=1, patience=3), x, y, xv, yv, keep_best=True)
    assert h.stopped_early is not None
    assert np.mean(h.model.predict(xv) == yv) == pytest.approx(h.best_value)


def test_patience_zero_never_stops_early(digits):
    h = train(MLPConfig(hidden=(32,), lr=0.1, epochs=12, seed=1, patience=0), *digits)
    assert len(h.epochs) == 12 and h.stopped_early is None


def test_patience_must_be_a_whole_number_of_epochs():
    with pytest.raises(SpaceError, match=r"study\.patience: must be >= 0, got -1"):
        parse_space("[study]\npatience = -1\n")


SPACE = """
[study]
name = "es"
dataset = "digits"
epochs = 60
trials = 6
test_top = 2

[params]
hidden = [ { int = [16, 48] } ]
lr = { log_uniform = [0.05, 0.3] }
"""


def test_a_study_with_patience_records_where_each_trial_stopped(tmp_path, capsys):
    path = tmp_path / "es.toml"
    path.write_text(textwrap.dedent(SPACE))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--patience", "3", "--jobs", "2"]) == 0
    assert "60 epochs (patience 3)" in capsys.readouterr().out
    df = pd.read_csv(out / "es" / "trials.csv")
    stopped = df[df["stopped_early"].notna()]
    assert len(stopped) >= 1, "no trial stopped early"
    assert (stopped["epochs_run"] == stopped["stopped_early"]).all()
    assert (stopped["stopped_early"] == stopped["best_epoch"] + 3).all()
    curves = pd.read_csv(out / "es" / "curves.csv")
    for _, row in df[df["state"] == "COMPLETE"].iterrows():
        best = curves[(curves["number"] == row["number"]) & (curves["epoch"] == row["best_epoch"])]
        assert best["val_accuracy"].iloc[0] == pytest.approx(row["value"])  # the value is the best epoch's
    # patience is part of what the study is: another value is another study
    assert cli.main(["run", str(path), "--out", str(out), "--patience", "5", "-q"]) == 2
    assert "patience 3 → 5" in capsys.readouterr().err
