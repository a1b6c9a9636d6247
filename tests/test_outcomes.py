"""Every trial's outcome: ok, or the way it failed (overflow, nan, collapsed, dead, stalled), from the
trainer to trials.csv, and the boundary of failure that ``regions --check`` tests on another study."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest
from fixtures.analysis.studies import make_study

from hpsearch import cli
from hpsearch.errors import Dead
from hpsearch.mlp import OPTIMIZERS, train
from hpsearch.mlp._outcome import KINDS, chance_level, classify, learned_line
from hpsearch.results import open_results
from hpsearch.vocabulary import DIVERGED_REASONS, FAILURES, OUTCOMES


def blobs(n=600, k=3, d=8, seed=0, weights=None):
    """Separable clusters: any sane network learns them within an epoch."""
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=weights)
    centres = rng.normal(0, 3, (k, d))
    x = (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    cut = int(0.8 * n)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def epochs(accs, losses=None):
    losses = losses or [1.0] * len(accs)
    return [{"val_accuracy": a, "train_loss": v} for a, v in zip(accs, losses, strict=True)]


def test_the_vocabulary_holds_every_kind_the_core_and_the_trainer_name():
    assert OUTCOMES[0] == "ok" and set(FAILURES) == set(OUTCOMES) - {"ok"}
    assert set(KINDS) | set(DIVERGED_REASONS) == set(FAILURES)


@pytest.mark.parametrize(
    "labels, chance",
    [
        ([0, 1, 2, 3] * 25, 0.25),
        ([0] * 80 + [1] * 20, 0.8),  # imbalanced: a constant answer scores the majority's rate
        ([2] * 7 + [0] * 3, 0.7),
    ],
)
def test_chance_is_the_majority_class_rate(labels, chance):
    assert chance_level(np.array(labels)) == pytest.approx(chance)


@pytest.mark.parametrize(
    "accs, losses, chance, expected",
    [
        ([0.5, 0.8, 0.9], None, 0.1, "ok"),
        ([0.12, 0.15, 0.2], None, 0.1, "ok"),  # slow, but past a tenth of the way from chance: it learned
        ([0.6, 0.3, 0.11], None, 0.1, "collapsed"),  # learned, then fell back to chance
        ([0.1, 0.1, 0.1], [4e4, 2.3, 2.3], 0.1, "collapsed"),  # the loss spiked, then chance
        ([0.1, 0.11, 0.12], [2.31, 2.30, 2.29], 0.1, "stalled"),  # never left chance
        ([0.8, 0.81, 0.81], None, 0.8, "stalled"),  # 81 % is chance when 80 % of the labels are one class
        ([0.8, 0.85, 0.9], None, 0.8, "ok"),
        ([0.9, float("nan"), 0.5], None, 0.5, "collapsed"),
    ],
)
def test_classify_reads_the_curve_against_chance(accs, losses, chance, expected):
    assert classify(epochs(accs, losses), chance, n_classes=10) == expected


def test_the_learned_line_is_a_tenth_of_the_way_from_chance_to_perfect():
    assert learned_line(0.1) == pytest.approx(0.19) and learned_line(0.5) == pytest.approx(0.55)


def _hidden_outputs(x, model):
    """The hidden layers' outputs, computed independently of the trainer's workspaces (relu)."""
    outs, a = [], x.astype(np.float64)
    for W, b in zip(model.W[:-1], model.b[:-1], strict=True):
        a = np.maximum(a @ W + b, 0.0)
        outs.append(a)
    return outs


@pytest.mark.parametrize("optimizer, epochs_dead", [("sgd", 1), ("momentum", 2)])
def test_a_dead_network_is_stopped_at_once_and_really_is_dead(optimizer, epochs_dead):
    x, y, xv, yv = blobs()
    cfg = dict(hidden=[16, 16], lr=5.0, batch_size=20, activation="relu", optimizer=optimizer, epochs=6, seed=3)
    with pytest.raises(Dead) as caught:
        train(cfg, x, y, xv, yv)
    dead = caught.value
    # plain SGD: certain at the first check; momentum coasts on its velocity: dead at two epoch ends
    assert dead.epoch == epochs_dead and dead.reason == "dead"
    assert dead.where == f"hidden layer {dead.layer}"
    # the same run without the check, to the end: that layer outputs zeros for every training input
    # from the epoch it was stopped on, so no gradient can reach it or below
    h = train({**cfg, "epochs": dead.epoch}, x, y, xv, yv, stop_dead=False)
    out = _hidden_outputs(x, h.model)[dead.layer - 1]
    assert not out.any()
    assert h.outcome != "ok"


def test_a_run_that_learns_is_never_flagged_and_the_check_costs_nothing_it_does_not_find():
    x, y, xv, yv = blobs()
    for opt in OPTIMIZERS:
        h = train(
            dict(
                hidden=[16, 8],
                lr=0.01 if opt in ("adam", "rmsprop", "adagrad") else 0.1,
                batch_size=20,
                activation="relu",
                optimizer=opt,
                epochs=4,
                seed=1,
            ),
            x,
            y,
            xv,
            yv,
        )
        assert h.outcome == "ok" and h.epochs[-1]["val_accuracy"] > 0.9, opt


def test_with_weight_decay_a_dead_layer_is_only_judged_at_the_last_epoch():
    x, y, xv, yv = blobs()
    cfg = dict(hidden=[16, 16], lr=5.0, batch_size=20, activation="relu", optimizer="sgd", epochs=4, seed=3)
    with pytest.raises(Dead) as early:
        train(cfg, x, y, xv, yv)
    assert early.value.epoch < 4
    with pytest.raises(Dead) as late:
        train({**cfg, "weight_decay": 1e-4}, x, y, xv, yv)
    assert late.value.epoch == 4  # weight decay could wake a unit: no early stop, the verdict at the end


def test_chance_follows_the_validation_labels_of_an_imbalanced_problem():
    x, y, xv, yv = blobs(weights=[0.85, 0.1, 0.05])
    h = train(
        dict(hidden=[8], lr=1e-6, batch_size=50, activation="tanh", optimizer="sgd", epochs=2, seed=0), x, y, xv, yv
    )
    assert h.chance == pytest.approx(np.bincount(yv).max() / len(yv))
    assert h.outcome == "stalled"


RELU = """
[study]
name = "relu-wide"
dataset = "digits"
validation = 0.2
epochs = 4
trials = {trials}
seed = {seed}

[params]
hidden      = [ {{ int = [16, 48] }} ]
lr          = {{ log_uniform = [0.03, 300.0] }}
batch_size  = {{ int = [20, 60], step = 20 }}
activation  = "relu"
normalizer  = "min_max"
"""


@pytest.fixture(scope="module")
def relu_studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("outcomes")
    out = []
    for seed in (0, 1):
        space = root / f"relu{seed}.toml"
        space.write_text(textwrap.dedent(RELU.format(trials=30, seed=seed)))
        assert (
            cli.main(["run", str(space), "--out", str(root / "out"), "--name", f"relu-{seed}", "--jobs", "2", "-q"])
            == 0
        )
        out.append(root / "out" / f"relu-{seed}")
    return out


def test_trials_csv_gives_every_finished_trial_an_outcome_and_failures_never_rank(relu_studies):
    df = pd.read_csv(relu_studies[0] / "trials.csv", keep_default_na=False, na_values=[""])
    assert df["outcome"].isin(OUTCOMES).all()
    assert (df["outcome"] == "dead").sum() >= 3  # large learning rates kill ReLU networks on digits
    assert (df["outcome"] == "ok").sum() >= 3
    ok = df["outcome"] == "ok"
    assert (df.loc[ok, "state"] == "COMPLETE").all() and (df.loc[~ok, "state"] == "PRUNED").all()
    assert df.loc[~ok, "value"].isna().all()  # a failed trial has no value: no sampler or table ranks it
    assert (df.loc[ok, "val_accuracy"] > learned_line(df["chance"].iloc[0])).all()
    dead = df[df["outcome"] == "dead"]
    assert (dead["prune_reason"] == "dead").all() and dead["div_where"].str.match(r"hidden layer \d").all()
    assert (dead["epochs_run"] == dead["div_epoch"]).all() and (dead["epochs_run"] < 4).any()
    curves = pd.read_csv(relu_studies[0] / "curves.csv")
    assert (curves.groupby("number").size().loc[dead["number"]] == dead["epochs_run"].to_numpy()).all()


def test_regions_maps_failure_by_kind_and_check_tests_the_boundary_on_another_seed(relu_studies, capsys):
    a, b = relu_studies
    assert cli.main(["regions", str(a), "--check", str(b)]) == 0
    out = capsys.readouterr().out
    assert "Failure by lr (log bins)" in out and " dead " in out.splitlines()[3] + " "
    assert "In short: training fails when lr > " in out
    check = next(line for line in out.splitlines() if line.startswith("Check on"))
    right, total = map(int, check.split("classifies ")[1].split(" trials")[0].split(" of "))
    df = pd.read_csv(b / "trials.csv", keep_default_na=False, na_values=[""])
    assert total == len(df) and right / total >= 0.8


def test_regions_json_gives_the_edge_and_the_checks_accuracy(relu_studies, capsys):
    a, b = relu_studies
    assert cli.main(["regions", str(a), "--check", str(b), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["edge"]["param"] == "lr" and data["edge"]["value"] > 0.03
    assert 0.0 <= data["check"]["accuracy"] <= 1.0
    assert data["check"]["correct"] == round(data["check"]["accuracy"] * data["check"]["trials"])
    assert sum(v["trials"] for v in data["check"]["kinds"].values()) == data["check"]["trials"]
    assert data["failed"] == sum(data["kinds"].values()) and "dead" in data["kinds"]
    rows = data["tables"]["lr"]
    assert sum(r["trials"] for r in rows) == data["finished"]
    assert all(r["ok"] + sum(r["kinds"].values()) == r["trials"] for r in rows)


def test_narrow_never_centres_on_a_failed_trial(relu_studies, tmp_path, capsys):
    a = relu_studies[0]
    assert cli.main(["narrow", str(a), "-o", str(tmp_path / "n.toml")]) == 0
    out = capsys.readouterr().out
    df = pd.read_csv(a / "trials.csv", keep_default_na=False, na_values=[""])
    ok = df[df["outcome"] == "ok"].sort_values("value", ascending=False)
    k = int(out.split("around its top ")[1].split(" ")[0])
    hi = float(out.split("lr ")[1].split("→")[1].split("–")[1].split()[0])
    assert hi >= ok["lr"].head(k).max() * 0.99
    assert hi < df.loc[df["outcome"] == "dead", "lr"].max()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--check", "{other}"], "not a study of the same space"),
        (["--check", "/nonexistent/study"], "/nonexistent/study: no such results directory"),
    ],
)
def test_a_check_on_a_foreign_or_missing_study_is_one_line_and_exit_code_2(
    relu_studies, tmp_path, capsys, argv, message
):
    other = make_study(tmp_path, "foreign", n=20)
    code = cli.main(["regions", str(relu_studies[0]), *[a.format(other=other) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: ") and message in lines[0], err


def test_an_old_trials_csv_without_outcome_reads_it_from_state_and_reason(tmp_path):
    d = make_study(tmp_path, n=40)
    df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
    assert "outcome" not in df
    res = open_results(d)
    got = res.trials.set_index("number")["outcome"]
    for _, row in df.iterrows():
        want = "ok" if row["state"] == "COMPLETE" else row["prune_reason"]
        assert got[row["number"]] == want
    assert res.counts().startswith(f"40 trials: {int((df.state == 'COMPLETE').sum())} ok")


def test_a_study_whose_top_is_at_chance_is_not_narrowed(tmp_path, capsys):
    d = make_study(tmp_path, n=30)
    df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
    df["outcome"] = np.where(df["state"] == "COMPLETE", "collapsed", df["prune_reason"])
    df.loc[df["state"] == "COMPLETE", ["state", "prune_reason", "value"]] = ["PRUNED", "collapsed", math.nan]
    df.to_csv(d / "trials.csv", index=False)
    assert cli.main(["narrow", str(d)]) == 2
    assert "no trial learned" in capsys.readouterr().err
