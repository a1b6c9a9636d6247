"""optuna-dashboard serves a study with its curves, scores and constants; read back through its JSON API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import hpsearch
from hpsearch import cli

pytest.importorskip("optuna_dashboard")

SPACE = """
[study]
name = "dash"
dataset = "digits"
epochs = 3
trials = 6
seed = 1
test_top = 2

[params]
hidden     = [ { int = [8, 24] } ]
lr         = { log_uniform = [0.01, 0.5] }
activation = "leaky_relu"
alpha      = 0.1
normalizer = "min_max"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    (root / "space.toml").write_text(SPACE)
    return hpsearch.run(root / "space.toml", jobs=2, out=root / "results", quiet=True)


@pytest.mark.slow
def test_the_dashboard_serves_curves_metric_name_test_scores_and_constants(study):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "dashboard", str(study.path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                summaries = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the dashboard did not start: {server.stdout.read()}") from None
                time.sleep(0.2)
        assert [s["study_name"] for s in summaries] == ["dash"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{summaries[0]['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert detail["objective_names"] == ["val_accuracy"]
    assert "`alpha` = `0.1`" in detail["note"]["body"]
    curves = study.curves
    trials = {t["number"]: t for t in detail["trials"]}
    assert len(trials) == 6
    for number, t in trials.items():
        assert [v["step"] for v in t["intermediate_values"]] == list(curves[curves["number"] == number]["epoch"])
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert attrs["const:alpha"] == "0.1"
        assert "curve" not in attrs
    for _, row in study.best(2).iterrows():
        attrs = {a["key"]: a["value"] for a in trials[int(row["number"])]["user_attrs"]}
        assert float(attrs["test_accuracy"]) == pytest.approx(row["test_accuracy"])
        best_curve = [v["value"] for v in trials[int(row["number"])]["intermediate_values"]]
        assert max(best_curve) == pytest.approx(row["value"])


def test_the_dashboard_view_follows_a_study_that_goes_on(study, tmp_path):
    import shutil

    from hpsearch.study.dashboard import view

    copy = tmp_path / "dash"
    shutil.copytree(study.path, copy)
    v = view(copy)
    assert len(v.study.trials) == 6
    assert hpsearch.run(copy / "space.toml", trials=8, jobs=1, out=tmp_path, quiet=True)
    assert v.sync() == 2
    assert [t.number for t in v.study.trials] == list(range(8))
    assert all(t.intermediate_values for t in v.study.trials)


def test_a_missing_optuna_dashboard_is_one_line(study, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
    assert cli.main(["dashboard", str(study.path)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'hpsearch[dashboard]'" in err and len(err.strip().splitlines()) == 1
