"""Keep every trial: kill -9 and resume, Ctrl-C, concurrent processes, workers on a real database."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from fixtures import processes
from fixtures.processes import hpsearch

pytestmark = pytest.mark.slow


def write_space(tmp_path, name="rel", epochs=6, trials=10):
    return processes.write_space(tmp_path, name, epochs=epochs, trials=trials, seed=0, batch=10)


def journal_study(results_dir: Path, name: str) -> optuna.Study:
    from hpsearch.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(None, results_dir))


def wait_for_finished(results_dir: Path, name: str, n: int, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (results_dir / "optuna-journal.log").exists():
            trials = journal_study(results_dir, name).get_trials(deepcopy=False)
            finished = [t for t in trials if t.state.is_finished()]
            if len(finished) >= n:
                return trials
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} trials finished within {timeout} s")


def finished_frame(results_dir: Path) -> pd.DataFrame:
    return pd.read_csv(results_dir / "trials.csv")


def test_kill_9_then_the_same_command_finishes_exactly_n_trials_and_keeps_the_finished_ones(tmp_path):
    space = write_space(tmp_path, trials=10, epochs=25)  # trials long enough that the kill lands mid-trial
    out = tmp_path / "out"
    d = out / "rel"
    proc = hpsearch("run", space, "--out", out, "--jobs", 2, "-q")
    before = wait_for_finished(d, "rel", 3)
    while not any(t.state.name == "RUNNING" for t in journal_study(d, "rel").get_trials()):
        assert proc.poll() is None, "the run ended before the kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.5)  # the trial processes die with their supervisor (PDEATHSIG)
    snapshot = {
        t.number: (t.state, t.value, t.params) for t in journal_study(d, "rel").get_trials() if t.state.is_finished()
    }
    running_at_kill = [t.number for t in journal_study(d, "rel").get_trials() if t.state.name == "RUNNING"]
    assert snapshot and len(before) >= 3
    assert running_at_kill, "no trial was running at the kill"

    again = hpsearch("run", space, "--out", out, "--jobs", 2, "-q")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr

    trials = journal_study(d, "rel").get_trials()
    for t in trials:  # nothing finished before the kill changed
        if t.number in snapshot:
            assert (t.state, t.value, t.params) == snapshot[t.number]
    df = finished_frame(d)
    retried = df[df["retried_as"].notna()]
    counted = df[df["retried_as"].isna()]
    assert len(counted) == 10
    assert set(counted["state"]) <= {"COMPLETE", "PRUNED"}
    assert "RUNNING" not in set(df["state"])
    # trials running at the kill: failed as interrupted, and their configuration ran again
    assert set(retried["number"]) == set(running_at_kill)
    for _, row in retried.iterrows():
        assert row["state"] == "FAIL" and row["fail_reason"].startswith("interrupted")
        rerun = df.set_index("number").loc[int(row["retried_as"])]
        assert rerun["state"] in ("COMPLETE", "PRUNED")
        if pd.notna(row["lr"]):  # killed after its configuration was drawn: the same one ran again
            assert rerun["lr"] == row["lr"] and rerun["hidden_1"] == row["hidden_1"]


def test_ctrl_c_stops_cleanly_keeps_results_and_prints_the_command_that_resumes_this_study(tmp_path):
    space = write_space(tmp_path, trials=12, epochs=9)
    out = tmp_path / "out"
    d = out / "renamed"
    # options that choose the study: the hint must repeat every one of them
    proc = hpsearch("run", space, "--out", out, "--jobs", 2, "--epochs", 6, "--name", "renamed", "--trials", 12)
    wait_for_finished(d, "renamed", 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    hint = stderr.split("run this command to resume:")[1].strip().splitlines()[0]
    for option in ("--epochs 6", "--name renamed", "--trials 12", f"--out {out}"):
        assert option in hint, hint
    df = finished_frame(d)
    assert (df["state"] != "RUNNING").all()
    n_done = int((df["retried_as"].isna() & df["state"].isin(["COMPLETE", "PRUNED"])).sum())
    assert 2 <= n_done < 12, "the interrupt landed after the end"
    assert "summary" not in stderr and (d / "summary.md").is_file()

    argv = shlex.split(hint)
    assert argv[:3] == ["python", "-m", "hpsearch"]
    again = hpsearch(*argv[3:], "-q")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "different space" not in err
    df = finished_frame(d)
    assert int(df["retried_as"].isna().sum()) == 12


def test_four_processes_on_the_embedded_storage_record_every_trial_once(tmp_path):
    space = write_space(tmp_path, trials=16, epochs=2)
    out = tmp_path / "out"
    procs = [hpsearch("run", space, "--out", out, "--jobs", 1, "-q") for _ in range(4)]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        errs.append(err)
        assert p.returncode == 0, err
    assert not any("locked" in e for e in errs)
    trials = journal_study(out / "rel", "rel").get_trials()
    assert [t.number for t in trials] == list(range(16))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    workers = {t.system_attrs.get("hpsearch:worker_id") for t in trials}
    assert len(workers) >= 2  # the work really was shared


POSTGRES = os.environ.get("HPSEARCH_TEST_POSTGRES_URL")


@pytest.mark.database
@pytest.mark.skipif(not POSTGRES, reason="HPSEARCH_TEST_POSTGRES_URL not set (.ci/run starts a PostgreSQL server)")
def test_a_run_and_a_worker_share_one_postgres_study_and_finish_each_trial_once(tmp_path):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    space = write_space(tmp_path, name=name, trials=16, epochs=4)
    out = tmp_path / "out"
    run = hpsearch("run", space, "--out", out, "--storage", POSTGRES, "--jobs", 1, "-q")
    storage = optuna.storages.RDBStorage(POSTGRES)
    deadline = time.monotonic() + 60
    while name not in optuna.get_all_study_names(storage):
        assert time.monotonic() < deadline, "the run never created its study"
        assert run.poll() is None, run.communicate()[1]
        time.sleep(0.2)
    worker = hpsearch("worker", "--storage", POSTGRES, "--study", name, "--jobs", 1, "-q")
    _, werr = worker.communicate(timeout=300)
    _, rerr = run.communicate(timeout=300)
    assert worker.returncode == 0, werr
    assert run.returncode == 0, rerr
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [t.number for t in trials] == list(range(16))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    by = {t.system_attrs["hpsearch:worker_id"] for t in trials}
    assert {str(run.pid), str(worker.pid)} <= {w.rsplit(":", 1)[1] for w in by}
    df = pd.read_csv(out / name / "trials.csv")
    assert len(df) == 16


@pytest.mark.database
@pytest.mark.skipif(not POSTGRES, reason="HPSEARCH_TEST_POSTGRES_URL not set (.ci/run starts a PostgreSQL server)")
def test_a_killed_worker_on_postgres_is_detected_by_heartbeat_and_its_trial_run_again(tmp_path):
    name = f"pgkill-{uuid.uuid4().hex[:8]}"
    space = write_space(tmp_path, name=name, trials=6, epochs=30)
    argv = ("run", space, "--out", tmp_path / "out", "--storage", POSTGRES, "--jobs", 1, "-q")
    first = hpsearch(*argv)
    storage = optuna.storages.RDBStorage(POSTGRES)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and first.poll() is None
        if name in optuna.get_all_study_names(storage):
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            if sum(t.state.is_finished() for t in trials) >= 2 and any(t.state.name == "RUNNING" for t in trials):
                break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    time.sleep(0.5)  # its trial process dies with it (PDEATHSIG)
    running_at_kill = [
        t.number for t in optuna.load_study(study_name=name, storage=storage).get_trials() if t.state.name == "RUNNING"
    ]
    assert running_at_kill, "no trial was running at the kill"
    again = hpsearch(*argv)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    interrupted = [t for t in trials if t.state.name == "FAIL"]
    assert sorted(t.number for t in interrupted) == running_at_kill
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    assert {t.number for t in interrupted} <= retried
    counted = [t for t in trials if t.number not in retried]
    assert len(counted) == 6 and all(t.state.name in ("COMPLETE", "PRUNED") for t in counted)
    df = pd.read_csv(tmp_path / "out" / name / "trials.csv")
    assert df[df["state"] == "FAIL"]["fail_reason"].str.startswith("interrupted").all()


POSTGRES_CTL = os.environ.get("HPSEARCH_TEST_POSTGRES_CTL")


def _postgres(action: str) -> None:
    subprocess.run(
        [*shlex.split(POSTGRES_CTL), action, *(["-m", "fast"] if action == "stop" else [])],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.database
@pytest.mark.skipif(
    not (POSTGRES and POSTGRES_CTL),
    reason="HPSEARCH_TEST_POSTGRES_URL / _CTL not set (.ci/run starts and controls a PostgreSQL server)",
)
def test_a_run_and_a_worker_ride_out_a_database_outage_and_finish_each_configuration_once(tmp_path):
    name = f"pgout-{uuid.uuid4().hex[:8]}"
    space = write_space(tmp_path, name=name, trials=8, epochs=100)
    run = hpsearch("run", space, "--out", tmp_path / "out", "--storage", POSTGRES, "--jobs", 1)
    storage = optuna.storages.RDBStorage(POSTGRES)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        if name in optuna.get_all_study_names(storage):
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            if sum(t.state.is_finished() for t in trials) >= 2:
                break
        time.sleep(0.2)
    worker = hpsearch("worker", "--storage", POSTGRES, "--study", name, "--jobs", 1)
    while not any(
        t.state.name == "RUNNING" and t.system_attrs.get("hpsearch:worker_id", "").endswith(f":{worker.pid}")
        for t in optuna.load_study(study_name=name, storage=storage).get_trials()
    ):
        assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()
        time.sleep(0.1)  # the outage starts once the worker works on a trial
    storage.engine.dispose()
    _postgres("stop")
    try:
        time.sleep(6)
        assert run.poll() is None and worker.poll() is None, "a process died during the outage"
    finally:
        _postgres("start")
    rout, rerr = run.communicate(timeout=300)
    wout, werr = worker.communicate(timeout=300)
    assert run.returncode == 0 and worker.returncode == 0, (rerr, werr)
    assert "Traceback" not in rerr + werr
    for said in (rout, wout):  # each said it was waiting, and when it could go on
        assert "unreachable" in said and "reachable again" in said, said
    password = POSTGRES.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    meta = (tmp_path / "out" / name / "meta.json").read_text()
    for text in (rout, rerr, wout, werr, meta):
        assert f":{password}@" not in text and ":***@" in rout + meta
    storage = optuna.storages.RDBStorage(POSTGRES)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    from hpsearch.study import is_duplicate, is_interrupted, slot_of

    done = [t for t in trials if not (is_interrupted(t) or is_duplicate(t))]
    assert sorted(slot_of(t) for t in done) == list(range(8))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in done)
    assert not any(t.state.name == "RUNNING" for t in trials)
