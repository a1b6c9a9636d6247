"""``hpsearch narrow``: a smaller space around the best trials, away from divergence, that check accepts."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.analysis.studies import make_from_space, make_study
from optuna.distributions import FloatDistribution, IntDistribution

from hpsearch import cli
from hpsearch.analysis.narrow import _ceil_sig, _floor_sig, shrink, top_count
from hpsearch.space import load_space

SPACES = Path(__file__).parent / "spaces"


def narrow(capsys, *argv):
    code = cli.main(["narrow", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def check(capsys, path) -> None:
    assert cli.main(["check", str(path), "--sample", "2"]) == 0, capsys.readouterr().err
    capsys.readouterr()


def params(path: Path) -> dict:
    return tomllib.loads(path.read_text())["params"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("narrow"), n=150)


def test_ranges_shrink_around_the_top_trials_and_stay_below_the_edge(study, tmp_path, capsys):
    out = tmp_path / "narrowed.toml"
    code, text, err = narrow(capsys, study, "-o", out, "--top", 0.2)
    assert code == 0, err
    check(capsys, out)
    df = pd.read_csv(study / "trials.csv")
    done = df[df.state == "COMPLETE"].sort_values("value", ascending=False)
    top = done.head(int(np.ceil(0.2 * len(done))))
    p = params(out)
    lo, hi = p["lr"]["log_uniform"]
    assert 0.005 <= lo < hi <= 3.0
    assert hi < 1.0  # the diverged region (lr above ~0.3–1) is cut off
    assert lo <= top.lr.min() * 1.0001 and lo >= top.lr.min() / 10 ** (0.1 * np.log10(3 / 0.005)) / 1.05
    low, high = p["batch_size"]["int"]
    assert p["batch_size"]["step"] == 10 and (high - low) % 10 == 0 and 10 <= low < high <= 90
    assert low <= top.batch_size.min() and high >= top.batch_size.max()
    assert p["optimizer"] == "sgd"  # constants kept
    assert p["alpha"]["when"] == {"activation": "leaky_relu"}  # conditions kept
    assert tomllib.loads(out.read_text())["study"]["name"] == "synthetic-narrow"
    assert f"Wrote {out} (study synthetic-narrow)." in text
    assert "capped at the edge lr >" in text
    for name in ("lr", "batch_size", "normalizer", "alpha"):
        assert any(line.strip().startswith(name) for line in text.splitlines()), name


def test_categories_shrink_to_those_of_the_top_trials_and_a_broken_condition_drops_its_parameter(tmp_path, capsys):
    d = make_study(tmp_path, n=80, leaky_worse=True)
    out = tmp_path / "n.toml"
    code, text, _ = narrow(capsys, d, "-o", out)
    assert code == 0
    check(capsys, out)
    p = params(out)
    assert p["activation"] == {"choice": ["relu"]}
    assert "alpha" not in p
    assert "dropped leaky_relu" in text
    assert "alpha       uniform 0 – 0.4        →  dropped" in text and "can never hold" in text


def test_a_variable_depth_space_narrows_its_nodes_once_and_stays_valid(tmp_path, capsys):
    d = make_from_space(tmp_path, "deep", (SPACES / "variable_depth.toml").read_text(), n=60)
    out = tmp_path / "deep.toml"
    code, text, err = narrow(capsys, d, "-o", out, "--top", 10)
    assert code == 0, err
    check(capsys, out)
    assert sum(line.strip().startswith("hidden nodes") for line in text.splitlines()) == 1
    p = params(out)
    assert set(p["hidden"]) == {"layers", "nodes"}
    assert p["momentum"]["when"] == {"optimizer": "momentum"}
    assert p["dropout"] == 0.1 and p["dtype"] == "float64"
    lo, hi = p["lr"]["log_uniform"]
    assert 1e-4 <= lo < hi <= 0.1


def test_a_chain_of_conditions_is_kept(tmp_path, capsys):
    d = make_from_space(tmp_path, "chain", (SPACES / "conditional_chain.toml").read_text(), n=40)
    out = tmp_path / "chain.toml"
    assert narrow(capsys, d, "-o", out)[0] == 0
    check(capsys, out)
    p = params(out)
    assert p["init_std"]["when"] == {"weight_init": "normal"}
    assert p["hidden"][0] == 64


def test_the_default_output_is_in_the_results_directory_and_can_be_rewritten(study, capsys):
    assert narrow(capsys, study)[0] == 0
    assert narrow(capsys, study, "--top", 0.5)[0] == 0  # its own earlier output is replaced
    assert (study / "narrowed.toml").read_text().startswith("# written by hpsearch narrow")
    (study / "narrowed.toml").unlink()


def test_a_file_narrow_did_not_write_is_not_overwritten_without_force(study, tmp_path, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text("# my hand-written space\n")
    code, _, err = narrow(capsys, study, "-o", mine)
    assert code == 2 and "exists and was not written by narrow" in err
    assert mine.read_text() == "# my hand-written space\n"
    assert narrow(capsys, study, "-o", mine, "--force")[0] == 0


@pytest.mark.parametrize(
    "values, dist, expected",
    [
        # a tenth of the log range as margin, clipped, rounded outward to two digits
        ([0.05, 0.2], FloatDistribution(0.005, 0.5, log=True), (0.03, 0.32)),
        ([0.006, 0.4], FloatDistribution(0.005, 0.5, log=True), (0.005, 0.5)),
        ([0.1, 0.15], FloatDistribution(0.0, 0.4), (0.06, 0.19)),
        # int ranges stay on the step grid of the original low and never collapse to one value
        ([30, 40], IntDistribution(10, 90, step=10), (20, 50)),
        ([90, 90], IntDistribution(10, 90, step=10), (80, 90)),
        ([16, 20], IntDistribution(16, 256, log=True), (12, 27)),
    ],
)
def test_shrink(values, dist, expected):
    lo, hi = shrink(np.array(values, dtype=float), dist)
    if isinstance(dist, IntDistribution) and not dist.log:
        assert (lo, hi) == expected
    else:
        assert lo == pytest.approx(max(expected[0], dist.low), rel=0.05)
        assert hi == pytest.approx(min(expected[1], dist.high), rel=0.05)
    assert dist.low <= lo < hi <= dist.high


def test_rounding_is_outward():
    assert _floor_sig(0.0937) == 0.093 and _ceil_sig(0.0931) == 0.094
    assert _floor_sig(0.0) == 0.0 and _ceil_sig(1.0) == 1.0


@pytest.mark.parametrize("top, n, k", [(0.2, 100, 20), (0.2, 10, 3), (0.2, 2, 2), (15, 100, 15), (15, 4, 4), (1, 9, 9)])
def test_top_count(top, n, k):
    assert top_count(top, n) == k


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        ("no_space", [], "no space.toml"),
        ("no_completed", [], "no trial learned (6 trials: 0 ok, 6 failed"),
        ("ok", ["--top", "0"], "--top must be a fraction in (0, 1] or a whole count >= 1, got 0"),
        ("ok", ["--top", "1.5"], "--top must be a fraction in (0, 1] or a whole count >= 1"),
        ("ok", ["-o", "{dir}/space.toml"], "the study's own space.toml"),
        ("ok", ["-o", "/nonexistent/dir/x.toml"], "no such directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, setup, argv, message):
    d = make_study(tmp_path, n=30)
    if setup == "no_space":
        (d / "space.toml").unlink()
    elif setup == "no_completed":
        df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
        df[df.state != "COMPLETE"].to_csv(d / "trials.csv", index=False)
    code, _, err = narrow(capsys, d, *[a.format(dir=d) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: ") and message in lines[0], err


SMALL = """
[study]
name = "e2e"
dataset = "digits"
epochs = 2
trials = 10
seed = 0
test_top = 0

[params]
hidden     = [ { int = [8, 16] } ]
lr         = { log_uniform = [0.01, 100.0] }
batch_size = { int = [40, 80], step = 20 }
activation = "relu"
normalizer = { choice = ["min_max", "z_score"] }
"""


def test_end_to_end_run_then_show_regions_narrow_and_check(tmp_path, capsys):
    space = tmp_path / "e2e.toml"
    space.write_text(textwrap.dedent(SMALL))
    assert cli.main(["run", str(space), "--out", str(tmp_path / "out"), "--jobs", "2", "-q"]) == 0
    capsys.readouterr()
    d = tmp_path / "out" / "e2e"
    assert cli.main(["show", str(d)]) == 0
    assert "study e2e · 10 trials" in capsys.readouterr().out
    assert cli.main(["regions", str(d)]) == 0
    out = capsys.readouterr().out
    assert "Failure by lr (log bins)" in out and "Boundary" in out
    assert narrow(capsys, d, "-o", tmp_path / "next.toml")[0] == 0
    check(capsys, tmp_path / "next.toml")
    lo, hi = params(tmp_path / "next.toml")["lr"]["log_uniform"]
    assert 0.01 <= lo < hi <= 100.0
    assert load_space(tmp_path / "next.toml").study.name == "e2e-narrow"
