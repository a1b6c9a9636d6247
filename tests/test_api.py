"""hpsearch as a library: run/open give a Study; its models predict raw inputs, save, load, and export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hpsearch
from hpsearch import cli
from hpsearch.mlp import MLPConfig, train

SPACE = """
[study]
name = "api"
dataset = "digits"
validation = 0.2
epochs = 4
trials = 10
seed = 3
test_top = 3

[params]
hidden      = [ { int = [8, 32] } ]
lr          = { log_uniform = [0.01, 0.5] }
batch_size  = { int = [20, 60], step = 20 }
activation  = "leaky_relu"
alpha       = { uniform = [0.0, 0.3] }
normalizer  = { choice = ["min_max", "z_score"] }
norm_axis   = { choice = ["global", "per_feature"] }
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    space = root / "space.toml"
    space.write_text(textwrap.dedent(SPACE))
    return hpsearch.run(space, jobs=2, out=root / "results", quiet=True)


def test_public_names_are_listed_and_documented():
    for name in ("run", "open", "Study", "Model", "load_model", "HPSearchError"):
        assert name in hpsearch.__all__
        assert getattr(hpsearch, name).__doc__
    assert "hpsearch.run" in hpsearch.__doc__


def test_run_returns_a_study_whose_frames_are_trials_csv_with_numeric_columns(study):
    csv = pd.read_csv(study.path / "trials.csv")
    assert len(study.trials) == len(csv) == 10
    assert list(study.trials.columns) == list(csv.columns)
    for col in ("number", "value", "lr", "hidden_1", "batch_size"):
        assert pd.api.types.is_numeric_dtype(study.trials[col]), col
    assert set(study.curves["number"]) <= set(study.trials["number"])
    assert {"epoch", "val_accuracy"} <= set(study.curves.columns)


def test_best_and_worst_rank_completed_trials_by_the_metric(study):
    done = study.trials[study.trials["state"] == "COMPLETE"]
    best, worst = study.best(3), study.worst(3)
    assert list(best["value"]) == sorted(done["value"], reverse=True)[:3]
    assert list(worst["value"]) == sorted(done["value"])[:3]
    assert study.failed()["state"].ne("COMPLETE").all()


def test_only_the_top_runs_keep_a_model_file(study):
    top = list(study.best(3)["number"])
    assert study.saved_models() == sorted(top)
    assert study.best(3)["test_accuracy"].notna().all()


def test_saved_models_predict_raw_inputs_with_the_recorded_validation_and_test_accuracy(study):
    x_tr, y_tr, x_val, y_val, x_test, y_test = study.data()
    assert x_val.max() > 1  # raw digits pixels (0..16), not normalized ones
    for _, row in study.best(3).iterrows():
        model = study.model(int(row["number"]))
        assert model.evaluate(x_val, y_val)["accuracy"] == row["value"]
        assert model.evaluate(x_test, y_test)["accuracy"] == pytest.approx(row["test_accuracy"], abs=1e-12)
        assert (model.predict(x_val) == model.predict_proba(x_val).argmax(axis=1)).all()
        assert np.allclose(model.predict_proba(x_val[:5]).sum(axis=1), 1, atol=1e-5)


def test_a_trial_without_a_model_file_is_rebuilt_to_its_recorded_value(study):
    row = study.worst(1).iloc[0]
    number = int(row["number"])
    assert number not in study.saved_models()
    model = study.model(number)
    _, _, x_val, y_val, _, _ = study.data()
    assert model.evaluate(x_val, y_val)["accuracy"] == row["value"]
    assert model.info["trial"] == number


def test_a_rebuilt_model_that_disagrees_with_its_trial_is_an_error(study, monkeypatch):
    from hpsearch.study import objective, rebuild

    real = objective.retrain
    monkeypatch.setattr(objective, "retrain", lambda cfg, *a, **k: real({**cfg, "lr": cfg["lr"] * 0.5}, *a, **k))
    with pytest.raises(hpsearch.ResultsError, match="rebuilt gives"):
        rebuild.rebuild(study.path, int(study.worst(1)["number"].iloc[0]))


def test_the_model_file_holds_the_documented_arrays(study, tmp_path):
    model = study.model()
    path = model.save(tmp_path / "best.npz")
    with np.load(path, allow_pickle=False) as f:
        names = set(f.files)
        assert str(f["format"]) == "hpsearch-model" and int(f["format_version"]) == 1
        assert str(f["hpsearch_version"]) == hpsearch.__version__
        sizes = list(f["sizes"])
        assert sizes == [64, *model.config.hidden, 10]
        assert f["W_1"].shape == (64, sizes[1]) and f["b_2"].shape == (10,)
        assert list(f["classes"]) == [str(d) for d in range(10)]
        config = json.loads(str(f["config"]))
        assert config["normalizer"] in ("min_max", "z_score") and config["lr"] == model.config.lr
        assert json.loads(str(f["info"]))["trial"] == model.info["trial"]
    assert {"norm_shift", "norm_scale", "norm_constant", "info"} <= names


def test_a_saved_model_loads_in_a_fresh_process_without_optuna_and_predicts_the_same(study, tmp_path):
    model = study.model()
    path = model.save(tmp_path / "m.npz")
    x = study.data()[4][:50]
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import hpsearch
        m = hpsearch.load_model({str(path)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        print(json.dumps({{"pred": m.predict(x).tolist(), "proba": m.predict_proba(x).tolist(),
                          "optuna": "optuna" in sys.modules}}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "1"},
    )
    got = json.loads(out.stdout)
    assert got["optuna"] is False
    assert got["pred"] == model.predict(x).tolist()
    assert np.array_equal(np.array(got["proba"], dtype=np.float32), model.predict_proba(x))


def test_export_writes_the_best_model_and_a_chosen_trial(study, tmp_path, capsys):
    assert cli.main(["export", str(study.path), "-o", str(tmp_path / "best.npz")]) == 0
    best = int(study.best(1)["number"].iloc[0])
    assert f"trial {best} of api" in capsys.readouterr().out
    x = study.data()[2]
    assert (hpsearch.load_model(tmp_path / "best.npz").predict(x) == study.model(best).predict(x)).all()
    worst = int(study.worst(1)["number"].iloc[0])
    assert cli.main(["export", str(study.path), "--trial", str(worst), "-o", str(tmp_path / "w.npz")]) == 0
    assert hpsearch.load_model(tmp_path / "w.npz").info["trial"] == worst


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--trial", "999"], "no trial 999"),
        (["-o", "model.txt"], "ends in .npz"),
        (["--trial", "x"], "--trial must be a trial number"),
    ],
)
def test_export_refuses_bad_requests_in_one_line(study, capsys, argv, message):
    assert cli.main(["export", str(study.path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_regions_narrow_and_plot_are_objects(study):
    from matplotlib.figure import Figure

    from hpsearch.analysis import regions

    r = study.regions()
    assert "lr" in r.tables and r.tables["lr"]["trials"].sum() == len(study.trials)
    assert {"bin", "ok", "failed", "fail_rate"} <= set(r.tables["lr"].columns)
    assert r.data["trials"] == len(study.trials) and list(r.rules.columns) == ["rule", "trials", "failed", "rate"]
    assert str(r) == "\n".join(regions.report_lines(study.results)) and "by lr" in str(r)
    n = study.narrow(top=4)
    assert n.top == 4 and "lr" in set(n.changes["parameter"])
    assert n.space().param_names()  # the text is a valid space
    for what in ("lr", "pair", "history", "curves"):
        assert isinstance(study.plot(what), Figure)


def test_library_errors_are_hpsearch_errors_not_system_exit(study, tmp_path):
    with pytest.raises(hpsearch.ResultsError, match="no such results directory"):
        hpsearch.open(tmp_path / "nowhere")
    with pytest.raises(hpsearch.ResultsError, match="no trial 999"):
        study.model(999)
    with pytest.raises(hpsearch.HPSearchError):
        hpsearch.run(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[params]\nlr = { log_uniform = [0.0, 0.5] }\n")
    with pytest.raises(hpsearch.SpaceError, match="params.lr"):
        hpsearch.run(tmp_path / "bad.toml", out=tmp_path / "r")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(hpsearch.HPSearchError, match="not a model file"):
        hpsearch.load_model(tmp_path / "junk.npz")
    with pytest.raises(hpsearch.DataError, match="shape"):
        study.model().predict(np.zeros((2, 3)))


def test_the_mlp_core_trains_on_plain_arrays_without_a_study():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    history = train(
        MLPConfig(hidden=(8,), lr=0.5, epochs=20, batch_size=20, seed=1),
        x[:200],
        y[:200],
        x[200:],
        y[200:],
        keep_best=True,
    )
    assert history.best_value > 0.9
    assert history.model.evaluate(x[200:], y[200:])["accuracy"] == history.best_value


def _processes_with(marker: str) -> list[int]:
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes():
                found.append(int(env.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_run_from_python_writes_the_files_raises_interrupted_and_leaves_no_process(tmp_path, sig):
    space = tmp_path / "space.toml"
    space.write_text(textwrap.dedent(SPACE).replace("epochs = 4", "epochs = 60").replace("trials = 10", "trials = 200"))
    marker = f"HPSEARCH_API_MARKER={os.getpid()}-{sig}-{time.time()}"
    key, value = marker.split("=")
    code = textwrap.dedent(f"""
        import hpsearch
        try:
            hpsearch.run({str(space)!r}, jobs=2, out={str(tmp_path / "out")!r}, quiet=True)
        except hpsearch.Interrupted as exc:
            print("interrupted", exc.signum)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, key: value},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    journal = tmp_path / "out" / "api" / "optuna-journal.log"
    deadline = time.monotonic() + 60
    while not (journal.is_file() and journal.read_text().count('"state":1') >= 2):  # two trials finished
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert f"interrupted {int(sig)}" in out, err
    trials = pd.read_csv(tmp_path / "out" / "api" / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() >= 1
    time.sleep(0.5)
    assert _processes_with(marker) == []
