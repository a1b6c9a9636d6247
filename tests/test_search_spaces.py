"""Every shipped search space runs, on the embedded digits and on real MNIST files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from hpsearch import cli
from hpsearch.space import load_space

REPO = Path(__file__).resolve().parents[1]
SPACES = sorted((REPO / "search_spaces").glob("*.toml"))
MNIST = Path(os.environ.get("HPSEARCH_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist-t10k"))


def test_the_six_classic_experiments_are_shipped():
    assert len(SPACES) >= 6


@pytest.mark.parametrize("space", SPACES, ids=lambda p: p.stem)
def test_each_space_says_what_it_asks_in_a_comment(space):
    first = space.read_text().lstrip().splitlines()[0]
    assert first.startswith("#") and len(first) > 20
    load_space(space)  # and is valid


@pytest.mark.parametrize("dataset", ["digits", "mnist"])
@pytest.mark.parametrize("space", SPACES, ids=lambda p: p.stem)
def test_each_space_runs_on_digits_and_on_mnist(tmp_path, space, dataset):
    if dataset == "mnist":
        if not MNIST.is_dir():
            pytest.skip(f"no MNIST files at {MNIST}")
        dataset = f"mnist:{MNIST}"
    code = cli.main(
        [
            "run",
            str(space),
            "--trials",
            "2",
            "--epochs",
            "1",
            "--jobs",
            "2",
            "--dataset",
            dataset,
            "--out",
            str(tmp_path),
            "--test-top",
            "1",
            "-q",
        ]
    )
    assert code == 0
    name = load_space(space).study.name
    df = pd.read_csv(tmp_path / name / "trials.csv")
    assert len(df) == 2 and set(df["state"]) <= {"COMPLETE", "PRUNED"}
