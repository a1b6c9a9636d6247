"""``hpsearch show``: ranked tables of a results directory, filtering, formats, and one-line errors."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from fixtures.analysis.studies import make_study

from hpsearch import cli
from hpsearch.results import infer_scale, open_results


def show(capsys, *argv):
    code = cli.main(["show", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str, title: str) -> list[dict]:
    """The rows of the text table under the line starting with ``title``, as {header: cell}.

    Cells are right-aligned under their header, so each ends where its header ends.
    """
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header = lines[start + 1]
    ends = [m.end() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        line = line.ljust(ends[-1])
        cells = [line[(ends[i - 1] if i else 0) : end].strip() for i, end in enumerate(ends)]
        rows.append(dict(zip(names, cells)))
    return rows


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("show"), n=60)


def test_best_worst_and_failed_tables_ranked_by_the_metric(study, capsys):
    code, out, err = show(capsys, study, "--top", 5, "--worst", 3)
    assert code == 0 and err == ""
    df = pd.read_csv(study / "trials.csv", keep_default_na=False, na_values=[""])
    done = df[df.state == "COMPLETE"].sort_values("value", ascending=False)
    diverged = df[(df.state == "PRUNED") & df.prune_reason.isin(["overflow", "nan"])]
    assert out.startswith(f"study synthetic · 60 trials: {len(done)} ok, {len(diverged)} failed")
    best = table_rows(out, "Best 5 of")
    assert [int(r["trial"]) for r in best] == done["number"].head(5).tolist()
    assert [int(r["rank"]) for r in best] == [1, 2, 3, 4, 5]
    worst = table_rows(out, "Worst 3 completed")
    assert [int(r["trial"]) for r in worst] == done["number"].tail(3)[::-1].tolist()
    assert [int(r["rank"]) for r in worst] == [len(done), len(done) - 1, len(done) - 2]
    div = table_rows(out, f"Failed {len(diverged)} of 60")
    assert sorted(int(r["trial"]) for r in div) == sorted(diverged["number"])
    # the kind "nan" is a divergence, not a missing value
    assert {r["kind"] for r in div} == {"overflow", "nan"}


def test_where_filters_with_a_pandas_query_and_shows_the_filtered_column(study, capsys):
    code, out, _ = show(capsys, study, "--where", "lr > 0.5 and normalizer == 'z_score'", "--worst", 0)
    assert code == 0
    df = pd.read_csv(study / "trials.csv")
    n = int(((df.lr > 0.5) & (df.normalizer == "z_score")).sum())
    assert f"where lr > 0.5 and normalizer == 'z_score': {n} of 60 trials" in out
    for title in ("Best", "Failed"):
        rows = table_rows(out, title)
        assert rows and all(float(r["lr"]) > 0.5 and r["norm"] == "z_score" for r in rows)


def test_where_accepts_the_names_shown_in_the_headers(study, capsys):
    code, out, _ = show(capsys, study, "--where", "val_acc > 0.95 and batch >= 50")
    assert code == 0
    rows = table_rows(out, "Best")
    assert rows and all(float(r["val_acc"]) > 0.95 and int(r["batch"]) >= 50 for r in rows)


def test_sort_orders_each_table_and_keeps_the_metric_rank(study, capsys):
    code, out, _ = show(capsys, study, "--top", 6, "--worst", 0, "--sort", "lr")
    assert code == 0
    best = table_rows(out, "Best 6")
    lrs = [float(r["lr"]) for r in best]
    assert lrs == sorted(lrs)
    assert sorted(int(r["rank"]) for r in best) == [1, 2, 3, 4, 5, 6]
    code, out, _ = show(capsys, study, "--top", 6, "--worst", 0, "--sort", "lr", "--desc")
    lrs = [float(r["lr"]) for r in table_rows(out, "Best 6")]
    assert lrs == sorted(lrs, reverse=True)


def test_markdown_format_gives_headings_and_pipe_tables(study, capsys):
    code, out, _ = show(capsys, study, "--format", "markdown", "--top", 3, "--worst", 0)
    assert code == 0
    assert out.startswith("# study synthetic")
    assert "## Best 3 of" in out and "## Failed" in out
    assert "| rank | trial |" in out and "| --- |" in out


def test_csv_format_is_one_machine_readable_table(study, capsys):
    code, out, _ = show(capsys, study, "--format", "csv", "--top", 4, "--worst", 2)
    assert code == 0
    df = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    assert list(df.columns[:3]) == ["table", "rank", "number"]
    assert df["table"].value_counts()[["best", "worst"]].tolist() == [4, 2]
    assert set(df["table"]) == {"best", "worst", "failed"}
    assert df.loc[df.table == "best", "rank"].tolist() == [1, 2, 3, 4]
    assert df.loc[df.table == "failed", "value"].isna().all()


def test_a_study_with_no_completed_trial_says_so_and_still_lists_the_failed(tmp_path, capsys):
    d = make_study(tmp_path, n=40)
    df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
    df = df[df.state == "PRUNED"].head(3)
    df.to_csv(d / "trials.csv", index=False)
    code, out, _ = show(capsys, d)
    assert code == 0
    assert "No completed trials (3 run)." in out
    assert "Failed 3 of 3 (overflow 2, nan 1)" in out


def test_a_study_with_no_failed_trial_says_so(tmp_path, capsys):
    code, out, _ = show(capsys, make_study(tmp_path, n=15, diverge=False))
    assert code == 0
    assert "No trial failed (0 of 15): every finished trial learned." in out
    assert "Best 10 of 15" in out


def test_a_running_study_with_partial_files_is_read(tmp_path, capsys):
    d = make_study(tmp_path, n=20, running=4)
    (d / "curves.csv").write_text("number,epo")  # caught mid-write by a copy
    (d / "divergence.csv").unlink()
    code, out, _ = show(capsys, d)
    assert code == 0
    assert "4 running" in out.splitlines()[0]
    assert "Still running: 4 (trials 16, 17, 18, 19)" in out


def test_a_copied_directory_without_meta_json_is_read_with_guessed_scales(tmp_path, capsys):
    d = make_study(tmp_path, n=40, meta=False)
    res = open_results(d)
    assert res.guessed and res.metric == "val_accuracy"
    assert res.params == ["hidden_1", "hidden_2", "lr", "batch_size", "activation", "alpha", "normalizer"]
    assert res.scales["lr"] == "log" and res.scales["alpha"] == "linear"
    assert res.scales["batch_size"] == "int" and res.scales["normalizer"] == "categorical"
    code, out, _ = show(capsys, d)
    assert code == 0 and "no meta.json" in out


def test_a_loss_study_ranks_lowest_first(tmp_path, capsys):
    d = make_study(tmp_path, n=30, metric="val_loss")
    code, out, _ = show(capsys, d, "--top", 5, "--worst", 0)
    values = [float(r["val_loss"]) for r in table_rows(out, "Best 5")]
    assert values == sorted(values)
    assert "lower is better" in out
    (d / "meta.json").unlink()
    assert open_results(d).metric == "val_loss"  # guessed from the value against the last val_loss


@pytest.mark.parametrize(
    "values, scale",
    [
        ([0.001, 0.01, 0.5], "log"),
        ([0.0, 0.2, 0.4], "linear"),
        ([10, 20, 90], "int"),
        ([1, 50, 900], "log_int"),
        (["a", "b"], "categorical"),
        ([True, False], "categorical"),
    ],
)
def test_scales_are_guessed_from_the_values(values, scale):
    assert infer_scale(pd.Series(values)) == scale


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        ("missing", [], "no such results directory"),
        ("foreign", [], "not an hpsearch results directory (no trials.csv)"),
        ("empty", [], "no trials yet"),
        (
            "ok",
            ["--sort", "batchsize"],
            "--sort: unknown column 'batchsize'; did you mean 'batch_size'? (columns: number",
        ),
        ("ok", ["--where", "lrr > 0.1"], "--where 'lrr > 0.1': unknown column 'lrr'; did you mean 'lr'?"),
        ("ok", ["--where", "lr >"], "--where 'lr >': not a valid condition"),
        ("ok", ["--where", "lr"], "not a condition"),
        ("ok", ["--top", "-1"], "--top must be 0 or more, got -1"),
        ("ok", ["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, setup, argv, message):
    d = tmp_path / "study"
    if setup == "foreign":
        d.mkdir()
        (d / "notes.txt").write_text("hello")
    elif setup == "empty":
        d = make_study(tmp_path, "study", n=3)
        (d / "trials.csv").write_text(open(d / "trials.csv").read().splitlines()[0] + "\n")
    elif setup == "ok":
        d = make_study(tmp_path, "study", n=10)
    code, out, err = show(capsys, d, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: ") and message in lines[0], err


def test_meta_json_parameter_order_is_used(tmp_path):
    d = make_study(tmp_path, n=10)
    meta = json.loads((d / "meta.json").read_text())
    assert open_results(d).params == meta["params"]


def test_crashed_trials_are_listed_with_their_reason_and_interrupted_ones_with_their_re_run(tmp_path, capsys):
    d = make_study(tmp_path, n=12)
    df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
    df["fail_reason"] = df["fail_reason"].astype(object)
    df.loc[[3, 4], ["state", "value"]] = ["FAIL", None]
    df.loc[3, "fail_reason"] = "interrupted: its worker process is gone"
    df.loc[4, "fail_reason"] = "crash: the trial process was killed by SIGSEGV"
    df.loc[3, "retried_as"] = 11
    df.to_csv(d / "trials.csv", index=False)
    code, out, _ = show(capsys, d)
    assert code == 0
    head = out.splitlines()[0]
    assert "11 trials:" in head and "1 crashed or timed out" in head and "1 interrupted and run again" in head
    lines = out.splitlines()
    at = lines.index("Crashed or timed out 1")
    assert lines[at + 1].split() == ["trial", "reason"]
    assert lines[at + 2].split() == ["4", "crash:", "the", "trial", "process", "was", "killed", "by", "SIGSEGV"]
    assert "Interrupted and run again: 1 (trial→re-run: 3→11); they are no results." in lines
