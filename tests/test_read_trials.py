"""Reading trials.csv from Python: every column with its real type, whatever is missing."""

from __future__ import annotations

import textwrap

import pandas as pd

from hpsearch import cli
from hpsearch.results import read_trials

SPACE = """
[study]
name = "t"
dataset = "digits"
epochs = 3
trials = 8
test_top = 2

[params]
hidden = { layers = { int = [1, 2] }, nodes = { int = [8, 24] } }
lr = { log_uniform = [0.05, 40.0] }
batch_size = { int = [20, 60], step = 20 }
activation = "leaky_relu"
normalizer = { choice = ["min_max", "z_score"] }
"""


def test_whole_numbers_read_as_integers_and_text_as_text_even_with_gaps(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(textwrap.dedent(SPACE))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "-q", "--jobs", "2"]) == 0
    raw = pd.read_csv(out / "t" / "trials.csv")
    df = read_trials(out / "t")
    # the gaps that make plain read_csv guess float: a trial without a second layer, one without a divergence
    assert raw["hidden_2"].isna().any() and raw["div_epoch"].isna().any(), "the study has no gaps to test"
    for col in (
        "number",
        "best_epoch",
        "div_epoch",
        "div_step",
        "retry_of",
        "retried_as",
        "epochs_run",
        "hidden_1",
        "hidden_2",
        "n_layers",
        "batch_size",
        "trial_seed",
    ):
        assert str(df[col].dtype) == "Int64", (col, df[col].dtype)
    for col in ("state", "fail_reason", "prune_reason", "worker"):
        assert str(df[col].dtype) == "string", (col, df[col].dtype)
    for col in ("value", "lr", "val_accuracy", "seconds"):
        assert df[col].dtype == float, (col, df[col].dtype)
    assert df["number"].tolist() == raw["number"].tolist()
    assert (df["hidden_1"].astype(float) == raw["hidden_1"]).all()
