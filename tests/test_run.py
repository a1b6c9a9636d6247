"""The run command end to end on the embedded digits data: files, determinism, divergence, resume, crashes."""

from __future__ import annotations

import os
import signal
import textwrap

import pandas as pd
import pytest

from hpsearch import cli
from hpsearch.study import objective

SMALL = """
[study]
name = "{name}"
dataset = "digits"
validation = 0.2
epochs = {epochs}
trials = {trials}
seed = 0
test_top = 2

[params]
hidden      = [ {{ int = [8, 24] }} ]
lr          = {{ log_uniform = [{lo}, {hi}] }}
batch_size  = {{ int = [20, 60], step = 20 }}
activation  = "leaky_relu"
alpha       = {{ uniform = [0.0, 0.4] }}
normalizer  = {{ choice = ["min_max", "z_score"] }}
"""


def write_space(tmp_path, name="small", epochs=3, trials=6, lo=0.01, hi=0.5, fname=None):
    path = tmp_path / (fname or f"{name}.toml")
    path.write_text(textwrap.dedent(SMALL.format(name=name, epochs=epochs, trials=trials, lo=lo, hi=hi)))
    return path


def run(*argv):
    return cli.main(["run", *map(str, argv), "-q"])


def read(tmp_path, name, file="trials.csv"):
    return pd.read_csv(tmp_path / "out" / name / file)


def test_run_writes_every_result_file_and_finishes_every_trial(tmp_path, capsys):
    space = write_space(tmp_path)
    assert run(space, "--out", tmp_path / "out", "--jobs", 2) == 0
    out = capsys.readouterr().out
    assert "Best" in out and "Results:" in out
    d = tmp_path / "out" / "small"
    for f in ("space.toml", "trials.csv", "curves.csv", "divergence.csv", "summary.md", "meta.json"):
        assert (d / f).is_file(), f
    df = read(tmp_path, "small")
    assert len(df) == 6
    assert set(df["state"]) <= {"COMPLETE", "PRUNED"}
    assert df["number"].tolist() == list(range(6))
    done = df[df.state == "COMPLETE"]
    assert done["value"].between(0, 1).all()
    assert done["best_epoch"].between(1, 3).all()
    # the two best completed runs got a test score, the others none
    assert done["test_accuracy"].notna().sum() == min(2, len(done))
    curves = read(tmp_path, "small", "curves.csv")
    assert set(curves["number"]) >= set(done["number"])
    assert (d / "space.toml").read_text() == space.read_text()


def test_same_seed_gives_identical_trials_whatever_the_number_of_jobs(tmp_path):
    space = write_space(tmp_path)
    assert run(space, "--out", tmp_path / "a", "--jobs", 1, "--test-top", 0) == 0
    assert run(space, "--out", tmp_path / "b", "--jobs", 2, "--test-top", 0) == 0
    cols = [
        "number",
        "state",
        "value",
        "hidden_1",
        "lr",
        "batch_size",
        "alpha",
        "normalizer",
        "best_epoch",
        "trial_seed",
    ]
    a = pd.read_csv(tmp_path / "a" / "small" / "trials.csv")[cols]
    b = pd.read_csv(tmp_path / "b" / "small" / "trials.csv")[cols]
    pd.testing.assert_frame_equal(a, b)


def test_a_different_seed_gives_different_configurations(tmp_path):
    space = write_space(tmp_path)
    assert run(space, "--out", tmp_path / "a", "--jobs", 1, "--test-top", 0, "--trials", 2, "--epochs", 1) == 0
    assert (
        run(space, "--out", tmp_path / "b", "--jobs", 1, "--test-top", 0, "--trials", 2, "--epochs", 1, "--seed", 1)
        == 0
    )
    a = pd.read_csv(tmp_path / "a" / "small" / "trials.csv")
    b = pd.read_csv(tmp_path / "b" / "small" / "trials.csv")
    assert not (a["lr"].values == b["lr"].values).all()


def test_diverged_trials_are_pruned_with_reason_and_trace_and_no_nan_value(tmp_path):
    space = write_space(tmp_path, name="hot", lo=20.0, hi=200.0, trials=4)
    assert run(space, "--out", tmp_path / "out", "--jobs", 2) == 0
    df = read(tmp_path, "hot")
    assert len(df) == 4 and (df["state"] == "PRUNED").all()
    assert set(df["prune_reason"]) <= {"overflow", "nan"}
    assert df["value"].isna().all()  # a diverged trial has no value, never a NaN score in a ranking
    assert df["div_epoch"].ge(1).all() and df["div_step"].ge(1).all()
    trace = read(tmp_path, "hot", "divergence.csv")
    assert set(trace["number"]) == set(df["number"])
    assert trace.groupby("number").size().min() >= 1
    summary = (tmp_path / "out" / "hot" / "summary.md").read_text()
    assert summary.startswith("# hpsearch study hot\n") and "## Failed 4 of 4 (overflow" in summary
    assert "| trial | hidden |" in summary and "```" not in summary  # real Markdown tables


def test_running_again_resumes_up_to_the_requested_trials_and_keeps_finished_ones(tmp_path):
    space = write_space(tmp_path)
    assert run(space, "--out", tmp_path / "out", "--trials", 3, "--jobs", 2, "--test-top", 0) == 0
    first = read(tmp_path, "small")
    assert run(space, "--out", tmp_path / "out", "--trials", 5, "--jobs", 2, "--test-top", 0) == 0
    second = read(tmp_path, "small")
    assert len(second) == 5
    cols = ["number", "state", "value", "lr", "datetime_start"]
    pd.testing.assert_frame_equal(second[cols].head(3), first[cols])
    # and again with the same number: nothing to do, nothing added
    assert run(space, "--out", tmp_path / "out", "--trials", 5, "--test-top", 0) == 0
    assert len(read(tmp_path, "small")) == 5


def test_a_results_directory_of_another_space_is_refused(tmp_path, capsys):
    space = write_space(tmp_path)
    assert run(space, "--out", tmp_path / "out", "--trials", 1, "--epochs", 1, "--test-top", 0) == 0
    other = write_space(tmp_path, hi=0.9, fname="other.toml")
    before = (tmp_path / "out" / "small" / "trials.csv").read_bytes()
    assert run(other, "--out", tmp_path / "out", "--trials", 2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different space" in err[0] and "--name" in err[0]
    assert (tmp_path / "out" / "small" / "trials.csv").read_bytes() == before


def test_a_trial_that_kills_its_process_is_recorded_as_failed_and_the_study_goes_on(tmp_path, monkeypatch):
    real = objective.run_trial

    def crashing(trial, *a, **k):
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGSEGV)
        if trial.number == 2:
            os._exit(7)
        return real(trial, *a, **k)

    monkeypatch.setattr(objective, "run_trial", crashing)  # trial processes are forked: they inherit it
    space = write_space(tmp_path, trials=4)
    assert run(space, "--out", tmp_path / "out", "--jobs", 2, "--test-top", 0) == 0
    df = read(tmp_path, "small").set_index("number")
    assert df.loc[1, "state"] == "FAIL" and "SIGSEGV" in df.loc[1, "fail_reason"]
    assert df.loc[2, "state"] == "FAIL" and "code 7" in df.loc[2, "fail_reason"]
    assert set(df.loc[[0, 3], "state"]) <= {"COMPLETE", "PRUNED"}


def test_an_exception_in_a_trial_is_a_failure_with_its_message(tmp_path, monkeypatch):
    def boom(trial, *a, **k):
        raise MemoryError("cannot allocate 12 GiB")

    monkeypatch.setattr(objective, "run_trial", boom)
    space = write_space(tmp_path, trials=2)
    assert run(space, "--out", tmp_path / "out", "--jobs", 1, "--test-top", 0) == 0
    df = read(tmp_path, "small")
    assert (df["state"] == "FAIL").all()
    assert df["fail_reason"].str.contains("MemoryError: cannot allocate").all()


def test_a_trial_over_its_time_limit_is_stopped_and_recorded(tmp_path, monkeypatch):
    import time

    def slow(trial, *a, **k):
        time.sleep(60)

    monkeypatch.setattr(objective, "run_trial", slow)
    space = write_space(tmp_path, trials=2)
    assert run(space, "--out", tmp_path / "out", "--jobs", 2, "--trial-timeout", 0.5, "--test-top", 0) == 0
    df = read(tmp_path, "small")
    assert (df["state"] == "FAIL").all()
    assert df["fail_reason"].str.startswith("timeout").all()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--trials", "0"], "--trials must be at least 1, got 0"),
        (["--trials", "-3"], "--trials must be at least 1, got -3"),
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--epochs", "x"], "--epochs must be a whole number"),
        (["--dataset", "mnist:/nonexistent/dir"], "/nonexistent/dir"),
        (["--dataset", "imagenet"], "imagenet"),
        (["--trial-timeout", "-1"], "--trial-timeout must be > 0"),
    ],
)
def test_bad_options_get_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    space = write_space(tmp_path)
    assert cli.main(["run", str(space), "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpsearch: ") and message in err[0]
    assert not (tmp_path / "out" / "small" / "trials.csv").exists()


def test_check_prints_the_space_and_samples(tmp_path, capsys):
    space = write_space(tmp_path)
    assert cli.main(["check", str(space), "--sample", "4"]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "lr" in out
    assert sum(1 for line in out.splitlines() if line.strip().startswith(("0:", "1:", "2:", "3:"))) == 4


@pytest.mark.parametrize("sampler, pruner", [("tpe", "median"), ("qmc", "hyperband")])
def test_optunas_other_samplers_and_pruners_run_and_pruned_trials_say_so(tmp_path, sampler, pruner):
    # lr down to 1e-4: the slow learners fall below the median and get pruned
    space = write_space(tmp_path, trials=16, epochs=6, lo=0.0001)
    assert (
        run(space, "--out", tmp_path / "out", "--jobs", 2, "--sampler", sampler, "--pruner", pruner, "--test-top", 0)
        == 0
    )
    df = read(tmp_path, "small")
    assert len(df) == 16 and set(df["state"]) <= {"COMPLETE", "PRUNED"}
    by_pruner = df[(df["state"] == "PRUNED") & ~df["prune_reason"].isin(["overflow", "nan"])]
    assert len(by_pruner) > 0, "the pruner stopped nothing"
    assert (by_pruner["prune_reason"] == "pruner").all()
    assert (by_pruner["epochs_run"] < 6).all()  # stopped early, with the epochs it did run
    meta = (tmp_path / "out" / "small" / "meta.json").read_text()
    assert f'"sampler": "{sampler}"' in meta and f'"pruner": "{pruner}"' in meta
