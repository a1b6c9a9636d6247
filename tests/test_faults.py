"""Fault injection: names that escape, cut journals, full disks, repeated kills, other directories, signals
outside the trial loop, passwords, modes and stray files. Each test checks that the fault really happened."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
from fixtures import processes
from fixtures.processes import hpsearch

from hpsearch import cli
from hpsearch.study import is_duplicate, is_interrupted, slot_of
from hpsearch.study import storage as stores

pytestmark = pytest.mark.slow


def write_space(tmp_path, name="f", epochs=3, trials=8, test_top=0, batch=20):
    return processes.write_space(tmp_path, name, epochs=epochs, trials=trials, seed=3, batch=batch, test_top=test_top)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def journal_trials(d: Path, name: str):
    return optuna.load_study(study_name=name, storage=stores.journal(d / "optuna-journal.log")).get_trials()


def results(trials) -> dict[int, dict]:
    """slot → params of the trial that finished it (interrupted and dropped trials aside); each slot once."""
    done = [t for t in trials if t.state.is_finished() and not is_interrupted(t) and not is_duplicate(t)]
    slots = Counter(slot_of(t) for t in done)
    assert all(n == 1 for n in slots.values()), f"a configuration finished twice: {slots}"
    return {slot_of(t): t.params for t in done}


def wait_until(predicate, timeout=120, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended first: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def running(d: Path, name: str, proc=None) -> bool:
    """A trial is RUNNING (started by ``proc``, when given: one left by a killed run does not count)."""
    j = d / "optuna-journal.log"
    if not j.exists():
        return False
    return any(
        t.state.name == "RUNNING"
        and (proc is None or str(t.system_attrs.get("hpsearch:worker_id", "")).endswith(f":{proc.pid}"))
        for t in journal_trials(d, name)
    )


# ---------------------------------------------------------------- 1. names


@pytest.mark.parametrize("name", ["..", "../x", "/abs/dir", ".", "a/b", "a\\b", ".hidden", "x" * 101, "con"])
def test_a_study_name_that_is_not_one_plain_directory_name_writes_nothing(tmp_path, capsys, name):
    space = write_space(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    code = cli.main(["run", str(space), "--out", str(tmp_path / "out"), "--name", name, "--trials", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("hpsearch: --name:"), err
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not Path("/abs").exists()


def test_a_nul_byte_in_the_file_name_is_one_line_not_a_traceback(tmp_path, capsys):
    space = tmp_path / "s.toml"
    space.write_text('[study]\nname = "a\\u0000b"\n[params]\nlr = 0.1\n')
    code = cli.main(["run", str(space), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "study.name" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_default_name_from_an_awkward_file_name_is_made_safe(tmp_path):
    from hpsearch.space import load_space

    path = tmp_path / "my space (v2).toml"
    path.write_text("[params]\nlr = 0.1\n")
    assert load_space(path).study.name == "my-space--v2"


# ---------------------------------------------------------------- 2. a cut journal


def test_a_cut_last_journal_record_is_set_aside_and_the_study_resumes(tmp_path):
    space = write_space(tmp_path, trials=4, epochs=1)
    out = tmp_path / "out"
    d = out / "f"
    code, _, err = finish(hpsearch("run", space, "--out", out, "-q", "--jobs", 1))
    assert code == 0, err
    journal = d / "optuna-journal.log"
    whole = journal.read_bytes()
    os.truncate(journal, len(whole) - 5)  # as a crash mid-write leaves it
    cut = whole[whole.rstrip(b"\n").rfind(b"\n") + 1 : len(whole) - 5]
    code, _, err = finish(hpsearch("run", space, "--out", out, "-q", "--trials", 6, "--jobs", 1))
    assert code == 0, err
    assert "Traceback" not in err
    notes = [line for line in err.splitlines() if "cut record" in line]
    assert len(notes) == 1 and "optuna-journal.log.broken" in notes[0]
    assert (d / "optuna-journal.log.broken").read_bytes() == cut + b"\n"
    assert journal.read_bytes().endswith(b"\n")
    assert len(results(journal_trials(d, "f"))) == 6
    code, _, err = finish(hpsearch("show", d))
    assert code == 0, err


def test_a_journal_bricked_by_a_glued_record_is_repaired_keeping_every_complete_record(tmp_path):
    journal = tmp_path / "j.log"
    storage = stores.journal(journal)
    study = optuna.create_study(study_name="s", storage=storage)
    for x in (1.0, 2.0, 3.0):
        study.enqueue_trial({"x": x})
    data = journal.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    # hpsearch 0.1 appended the next record right after a cut one: "{...cut{...whole}\n"
    journal.write_bytes(data[:last] + data[last:-9] + data[last:])
    storage = stores.journal(journal)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.system_attrs["fixed_params"]["x"] for t in trials] == [1.0, 2.0, 3.0]
    assert (tmp_path / "j.log.broken").read_bytes() == data[last:-9] + b"\n"


# ---------------------------------------------------------------- 3. a full disk


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_ends_the_run_with_one_line_and_the_resume_finishes_exactly_n(tmp_path):
    (tmp_path / "ref").mkdir()
    ref_space = write_space(tmp_path / "ref", trials=20)
    code, _, err = finish(hpsearch("run", ref_space, "--out", tmp_path / "ref-out", "-q", "--jobs", 2))
    assert code == 0, err
    reference = results(journal_trials(tmp_path / "ref-out" / "f", "f"))
    ref_dir = tmp_path / "ref-out" / "f"
    full_size = (ref_dir / "optuna-journal.log").stat().st_size
    # the limit is per file: it must let every other file (a model, trials.csv) be written whole
    others = max(p.stat().st_size for p in ref_dir.rglob("*") if p.is_file() and p.name != "optuna-journal.log")
    limit = max(full_size // 2, others + 4096)
    assert limit < full_size * 0.9, (limit, full_size)

    space = write_space(tmp_path, trials=20)
    out = tmp_path / "out"
    d = out / "f"
    code, stdout, err = finish(
        hpsearch("run", space, "--out", out, "-q", "--jobs", 2, preexec_fn=_file_size_limit(limit))
    )
    assert code == 2, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "resume" in lines[0], err
    assert "Traceback" not in err
    journal = d / "optuna-journal.log"
    assert journal.read_bytes().endswith(b"\n")  # no partial record was left behind
    assert 0 < len(results(journal_trials(d, "f"))) < 20, "the disk never filled"

    code, _, err = finish(hpsearch("run", space, "--out", out, "-q", "--jobs", 2))
    assert code == 0, err
    assert results(journal_trials(d, "f")) == reference


# ---------------------------------------------------------------- 4. repeated interruptions


def test_after_any_sequence_of_kills_the_finished_configurations_are_those_of_an_uninterrupted_run(tmp_path):
    n = 6
    # trials of a few seconds: a kill lands while the same first slots run, again and again
    ref = write_space(tmp_path, name="ref", trials=n, epochs=30, batch=10)
    code, _, err = finish(hpsearch("run", ref, "--out", tmp_path / "out", "-q", "--jobs", 2))
    assert code == 0, err
    reference = {s: p for s, p in results(journal_trials(tmp_path / "out" / "ref", "ref")).items()}

    space = write_space(tmp_path, name="k", trials=n, epochs=30, batch=10)
    d = tmp_path / "out" / "k"
    outputs = []
    # kill -9 as soon as trials run (the same first slots are hit again and again), then Ctrl-C
    # followed by kill -9 within 0.1 s (between failing a trial and queueing it again)
    for how in ("kill", "kill", "kill", "int+kill", "kill", "int+kill"):
        proc = hpsearch("run", space, "--out", tmp_path / "out", "--jobs", 2)
        wait_until(lambda proc=proc: running(d, "k", proc), proc=proc)
        if how == "int+kill":
            proc.send_signal(signal.SIGINT)
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        outputs.append(out)
        time.sleep(0.3)  # trial processes die with their supervisor
    trials = journal_trials(d, "k")
    times = Counter(slot_of(t) for t in trials if is_interrupted(t))
    assert max(times.values(), default=0) >= 3, f"no configuration was interrupted three times: {times}"

    proc = hpsearch("run", space, "--out", tmp_path / "out", "--jobs", 2)
    code, out, err = finish(proc)
    assert code == 0, err
    outputs.append(out)
    assert results(journal_trials(d, "k")) == reference
    shown = [(int(a), int(b)) for text in outputs for a, b in re.findall(r"^\s*(\d+)/(\d+) ", text, re.M)]
    assert shown and all(a <= b == n for a, b in shown), shown
    for line in re.findall(r"resuming: (\d+) of (\d+)", "".join(outputs)):
        assert int(line[0]) <= int(line[1]) == n
    df = pd.read_csv(d / "trials.csv")
    assert int(df["retried_as"].isna().sum()) == n


# ---------------------------------------------------------------- 5. the working directory


def test_a_resume_from_another_directory_finds_the_dead_workers_trials(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    space = write_space(tmp_path, trials=6, epochs=20)
    proc = hpsearch("run", space, "--out", "res", "--jobs", 2, cwd=a)  # relative to a
    d = a / "res" / "f"
    wait_until(lambda: running(d, "f", proc), proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert any(t.state.name == "RUNNING" for t in journal_trials(d, "f"))
    code, _, err = finish(hpsearch("run", space, "--out", a / "res", "--jobs", 2, "-q", cwd=b), timeout=120)
    assert code == 0, err
    assert len(results(journal_trials(d, "f"))) == 6


def test_two_runs_from_different_directories_share_one_journal_without_failing_each_others_trials(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    space = write_space(tmp_path, trials=10, epochs=8)
    out = tmp_path / "res"
    procs = [hpsearch("run", space, "--out", out, "--jobs", 1, "-q", cwd=c) for c in (a, b)]
    for p in procs:
        code, _, err = finish(p)
        assert code == 0 and "Traceback" not in err, err
    trials = journal_trials(out / "f", "f")
    assert len(results(trials)) == 10
    assert not any(is_interrupted(t) for t in trials)
    assert len({t.system_attrs["hpsearch:worker_id"] for t in trials}) == 2


# ---------------------------------------------------------------- 7. signals outside the trial loop


def _processes_with(marker: str, comm: str | None = None) -> list[int]:
    """Processes whose environment holds ``marker`` (and whose name is ``comm``, when given)."""
    pids = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes() and (
                comm is None or (env.parent / "comm").read_text().strip() == comm
            ):
                pids.append(int(env.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_test_set_scoring_writes_the_files_and_leaves_no_process(tmp_path, sig):
    space = write_space(tmp_path, trials=6, epochs=40, test_top=0, batch=10)
    out = tmp_path / "out"
    d = out / "f"
    code, _, err = finish(hpsearch("run", space, "--out", out, "-q", "--jobs", 2))
    assert code == 0, err
    # trials without a saved model (a study of an older hpsearch, or run by a worker elsewhere) are
    # retrained for their test scores, in processes of their own
    shutil.rmtree(d / "models", ignore_errors=True)
    marker = f"HPSEARCH_TEST_MARKER={os.getpid()}-{sig}-{time.time()}"
    key, value = marker.split("=")
    proc = hpsearch("run", space, "--out", out, "--jobs", 2, "--test-top", 6, env={key: value})
    wait_until(lambda: len(_processes_with(marker, "hpsearch-score")) == 2, timeout=60, proc=proc)
    proc.send_signal(sig)
    code, out_text, err = finish(proc, timeout=60)
    assert code == 128 + sig
    assert "Traceback" not in err and "run this command to resume" in err
    df = pd.read_csv(d / "trials.csv")
    assert len(df) == 6 and set(df["state"]) <= {"COMPLETE", "PRUNED"}  # the files hold the final state
    time.sleep(0.5)
    assert _processes_with(marker) == []


# ---------------------------------------------------------------- 9, 10: what a person reads


def test_a_refused_directory_says_what_differs(tmp_path, capsys):
    space = write_space(tmp_path, trials=2, epochs=2)
    out = tmp_path / "out"
    assert cli.main(["run", str(space), "--out", str(out), "-q", "--jobs", "1"]) == 0
    capsys.readouterr()
    other = tmp_path / "other.toml"
    other.write_text(space.read_text().replace("[0.01, 0.3]", "[0.02, 0.3]"))
    assert cli.main(["run", str(other), "--out", str(out), "--epochs", "3", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "epochs 2 → 3" in err[0]
    assert "params.lr { log_uniform = [0.01, 0.3] } → { log_uniform = [0.02, 0.3] }" in err[0]


def test_asking_for_fewer_trials_than_finished_says_so_and_changes_nothing(tmp_path, capsys):
    space = write_space(tmp_path, trials=4, epochs=1)
    out = tmp_path / "out"
    assert cli.main(["run", str(space), "--out", str(out), "-q", "--jobs", "1"]) == 0
    capsys.readouterr()
    snapshot = [(t.number, t.state, t.params, t.user_attrs, t.system_attrs) for t in journal_trials(out / "f", "f")]
    target = optuna.load_study(study_name="f", storage=stores.journal(out / "f" / "optuna-journal.log")).user_attrs
    assert cli.main(["run", str(space), "--out", str(out), "--trials", "2"]) == 2
    captured = capsys.readouterr()
    assert "already has 4 finished trials, more than the 2 asked for" in captured.err
    assert "/2" not in captured.out
    assert [
        (t.number, t.state, t.params, t.user_attrs, t.system_attrs) for t in journal_trials(out / "f", "f")
    ] == snapshot
    assert (
        optuna.load_study(study_name="f", storage=stores.journal(out / "f" / "optuna-journal.log")).user_attrs == target
    )


# ---------------------------------------------------------------- 11-14: hygiene


def test_a_storage_password_is_never_shown():
    assert stores.mask_url("postgresql://me:s3cr3t@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert stores.mask_url("postgresql://db/x?user=me&password=s3cr3t") == "postgresql://db/x?user=me&password=***"
    assert stores.mask_url("postgresql://db/x") == "postgresql://db/x"


def test_an_unreachable_storage_names_it_without_its_password_and_leaves_no_directory(tmp_path, capsys):
    space = write_space(tmp_path)
    out = tmp_path / "out"
    url = "postgresql://me:s3cr3t@127.0.0.1:1/db"
    code = cli.main(["run", str(space), "--out", str(out), "--storage", url, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "s3cr3t" not in err and "me:***@127.0.0.1:1" in err, err
    assert not out.exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_result_files_honour_the_umask(tmp_path, umask, mode):
    space = write_space(tmp_path, trials=2, epochs=4)  # trials that learn: the best keeps its model
    out = tmp_path / "out"
    code, _, err = finish(hpsearch("run", space, "--out", out, "-q", preexec_fn=lambda: os.umask(umask)))
    assert code == 0, err
    models = sorted((out / "f" / "models").glob("*.npz"))
    assert models, "no model was saved"
    for path in [out / "f" / name for name in ("trials.csv", "summary.md", "meta.json", "space.toml")] + models:
        assert path.stat().st_mode & 0o777 == mode, path.name


def test_a_huge_choice_is_checked_in_linear_time_and_a_huge_value_is_cut_in_messages(tmp_path):
    from hpsearch.errors import HPSearchError
    from hpsearch.space import parse_space

    options = ", ".join(str(i) for i in range(1, 200_001))
    started = time.process_time()
    with pytest.raises(HPSearchError, match=r"params.batch_size.choice\[200000\]: choice lists 7 twice"):
        parse_space(f"[params]\nbatch_size = {{ choice = [{options}, 7] }}\n")
    assert time.process_time() - started < 30  # quadratic took minutes; linear takes well under a second
    for text in (f'[params]\nactivation = "{"x" * 5_000_000}"\n', f'[study]\nname = "{"x" * 5_000_000}"\n'):
        with pytest.raises(HPSearchError) as info:
            parse_space(text)
        assert len(str(info.value)) < 1200


def test_a_stray_temporary_file_of_a_killed_export_is_removed_by_the_next_one(tmp_path):
    from hpsearch.results import atomic_write, remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stray = tmp_path / f".trials.csv.{dead.stdout.strip()}.abcd1234.tmp"
    stray.write_text("half")
    mine = tmp_path / f".trials.csv.{os.getpid()}.abcd1234.tmp"  # a live process's export: left alone
    mine.write_text("writing")
    assert remove_stale_temporaries(tmp_path) == 1
    assert not stray.exists() and mine.exists()
    atomic_write(tmp_path / "x.csv", "a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "x.csv"])


def test_a_non_numeric_cell_in_trials_csv_is_one_line_for_every_reader(tmp_path, capsys):
    space = write_space(tmp_path, trials=3, epochs=1)
    out = tmp_path / "out"
    assert cli.main(["run", str(space), "--out", str(out), "-q", "--jobs", "1"]) == 0
    path = out / "f" / "trials.csv"
    df = pd.read_csv(path)
    for col in ("value", "lr", "val_accuracy"):
        bad = df.astype({col: object})
        bad.loc[1, col] = "abc"
        bad.to_csv(path, index=False)
        for command in ("plot", "show", "regions", "narrow"):
            capsys.readouterr()
            code = cli.main(
                [command, str(out / "f")] + (["-o", str(tmp_path / "n.toml")] if command == "narrow" else [])
            )
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and err == [f"hpsearch: {path}: column {col!r}, line 3: 'abc' is not a number"], err
    df.to_csv(path, index=False)
    assert cli.main(["plot", str(out / "f")]) == 0


def test_nan_and_inf_in_a_csv_data_set_name_the_same_row_and_column(tmp_path, capsys):
    space = write_space(tmp_path)
    for value, what in (("nan", "missing value"), ("inf", "inf is not a finite number")):
        data = tmp_path / f"{value}.csv"
        data.write_text(f"label,a,b\n0,1,2\n1,3,{value}\n0,1,1\n1,2,2\n")
        code = cli.main(["run", str(space), "--dataset", f"csv:{data}", "--out", str(tmp_path / "out"), "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err == f"hpsearch: csv: {data}: column 'b', row 2: {what}", err
