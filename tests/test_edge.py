"""``hpsearch edge``: the lr edge of a space predicted from sharpness and short runs, on digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpsearch import cli
from hpsearch import data as datasets
from hpsearch.mlp import MLPConfig, lr_edge
from hpsearch.mlp._edge import short_run_diverges

SPACE = """
[study]
name = "edge-test"
dataset = "digits"
epochs = 5
seed = 0

[params]
hidden      = [ {{ int = [10, 40] }} ]
lr          = {{ log_uniform = [0.01, 5.0] }}
batch_size  = {{ int = [20, 60], step = 20 }}
activation  = "leaky_relu"
alpha       = {{ uniform = [0.0, 0.3] }}
normalizer  = {normalizer}
weight_init = "he_normal"
optimizer   = "{optimizer}"
"""


def write_space(tmp_path, optimizer="sgd", normalizer='"min_max"', name="space.toml"):
    path = tmp_path / name
    path.write_text(SPACE.format(optimizer=optimizer, normalizer=normalizer))
    return path


def edge(capsys, *argv):
    code = cli.main(["edge", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_edge_json_gives_the_predicted_edge_inside_its_spread_and_every_measurement(tmp_path, capsys):
    path = write_space(tmp_path, normalizer='{ choice = ["min_max", "z_score"] }')
    code, out, err = edge(capsys, path, "--samples", "4", "--steps", "100", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert isinstance(report["lr_edge"], float) and report["lr_edge"] > 0
    lo, hi = report["lr_edge_spread"]
    assert lo <= report["lr_edge"] <= hi
    assert len(report["configurations"]) == 4
    for row in report["configurations"]:
        assert row["sharpness"] > 0 and row["lr_limit"] == pytest.approx(2.0 / row["sharpness"])
        assert row["survived"] < row["diverged"]
    assert set(report["by"]) <= {"normalizer"}
    assert report["searched"] == [0.01, 5.0]
    assert 0.0 <= report["expect_diverged"] <= 1.0


def test_edge_text_states_its_method_the_edge_and_the_stability_limit(tmp_path, capsys):
    code, out, _ = edge(capsys, write_space(tmp_path), "--samples", "2", "--steps", "100")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("edge of ") and "2 sampled configurations" in lines[0]
    assert lines[1].startswith("method: λ_max at initialization")
    assert lines[2].startswith("predicted lr edge: ")
    assert "stability limit (2)" in lines[3]
    assert "the searched lr 0.01 – 5" in out


def test_edge_is_reproducible_for_a_seed(tmp_path, capsys):
    path = write_space(tmp_path)
    runs = [
        json.loads(edge(capsys, path, "--samples", "2", "--steps", "60", "--seed", "3", "--format", "json")[1])
        for _ in range(2)
    ]
    assert runs[0]["lr_edge"] == runs[1]["lr_edge"]


def test_edge_gives_no_number_for_adaptive_optimizers_and_says_why(tmp_path, capsys):
    path = write_space(tmp_path, optimizer="adam")
    code, out, _ = edge(capsys, path, "--samples", "2", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["lr_edge"] is None and report["adaptive"] == ["adam"]
    code, out, _ = edge(capsys, path, "--samples", "2")
    assert "predicted lr edge: none — no prediction for adam: adaptive optimizers" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.toml"], "missing.toml: no such file"),
        (["{space}", "--samples", "0"], "--samples must be at least 1, got 0"),
        (["{space}", "--format", "xml"], "invalid choice: 'xml'"),
        (["{space}", "--dataset", "mnist:/nonexistent"], "mnist: directory not found"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(tmp_path, capsys, argv, message):
    path = write_space(tmp_path)
    argv = [a.format(space=path) for a in argv]
    code, out, err = edge(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("hpsearch: ") and message in err and err.count("\n") == 1


def test_lr_edge_brackets_where_short_runs_start_to_overflow():
    ds = datasets.load("digits")
    x = ds.x_train / 16.0
    config = MLPConfig(hidden=(32,), activation="leaky_relu", alpha=0.2, batch_size=32, seed=0)
    est = lr_edge(config, x, ds.y_train, rng=np.random.default_rng(0), steps=100)
    assert est.limit == 2.0 and est.lr_limit == pytest.approx(2.0 / est.sharpness)
    assert est.low < est.lr_edge < est.high and est.high / est.low < 1.2
    rows = np.random.default_rng(0).spawn(3)[2].permutation(len(x))[: 100 * 32]
    xs, ys = x[rows], ds.y_train[rows]
    assert not short_run_diverges(config, xs, ys, 10, est.low, steps=100)
    assert short_run_diverges(config, xs, ys, 10, est.high, steps=100)
    # the quadratic limit is where instability starts, not where runs are lost
    assert est.factor > 0.5
