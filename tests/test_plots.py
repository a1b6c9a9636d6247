"""``hpsearch plot``: the PNG figures of a study, written to RESULTS_DIR/plots/ and listed."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures.analysis.studies import make_study

from hpsearch import cli
from hpsearch.analysis.plots import outcome
from hpsearch.results import open_results

PNG = b"\x89PNG\r\n\x1a\n"


def plot(capsys, *argv):
    code = cli.main(["plot", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_figure_is_written_as_a_png_and_listed(tmp_path, capsys):
    d = make_study(tmp_path, n=60)
    code, out, err = plot(capsys, d, "--top", 3, "--traces", 2)
    assert code == 0, err
    expected = [f"metric_vs_{p}.png" for p in open_results(d).params]
    expected += ["pair_lr_alpha.png", "history.png", "curves.png", "divergence.png"]
    assert out.splitlines()[0].startswith(f"Wrote {len(expected)} figures of synthetic")
    assert [line.strip() for line in out.splitlines()[1:]] == expected
    for name in expected:
        data = (d / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    assert not list((d / "plots").glob(".*.tmp"))  # written atomically, no leftovers


def test_a_pair_can_be_chosen_and_a_study_without_completed_trials_still_gets_its_traces(tmp_path, capsys):
    d = make_study(tmp_path, n=40)
    df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
    df[df.state == "PRUNED"].to_csv(d / "trials.csv", index=False)
    out_dir = tmp_path / "figs"
    code, out, _ = plot(capsys, d, "--params", "lr", "--pair", "lr,normalizer", "--out", out_dir)
    assert code == 0
    written = {p.name for p in out_dir.glob("*.png")}
    assert written == {"metric_vs_lr.png", "pair_lr_normalizer.png", "divergence.png", "history.png"}
    assert "curves.png" not in written
    assert "(no curves.png: no completed trial with a learning curve yet)" in out


def test_outcomes_tell_each_failure_kind_from_pruned_and_running():
    df = pd.DataFrame(
        {
            "state": ["COMPLETE", "PRUNED", "PRUNED", "PRUNED", "PRUNED", "PRUNED", "PRUNED", "FAIL", "RUNNING"],
            "prune_reason": [None, "overflow", "nan", "dead", "collapsed", "stalled", "pruner", None, None],
        }
    )
    expected = ["ok", "overflow", "nan", "dead", "collapsed", "stalled", "pruned", "error", "running"]
    assert outcome(df).tolist() == expected  # derived from state and reason (a trials.csv without outcome)
    df["outcome"] = ["ok", "overflow", "nan", "dead", "collapsed", "stalled", "ok", None, None]
    assert outcome(df).tolist() == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pair", "lr,alpah"], "--pair: unknown parameter 'alpah'; did you mean 'alpha'?"),
        (["--pair", "lr"], "--pair takes two different parameters"),
        (["--top", "0"], "--top must be at least 1, got 0"),
        (["--params", "lr,optimizer"], "--params: optimizer was not searched"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    d = make_study(tmp_path, n=10)
    code, _, err = plot(capsys, d, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: ") and message in lines[0], err
    assert not (d / "plots").exists()


def test_a_missing_directory_is_one_line(tmp_path, capsys):
    code, _, err = plot(capsys, tmp_path / "nope")
    assert code == 2 and err.strip().endswith("no such results directory")
