"""A corpus of bad inputs: each gets one line naming the problem, exit code 2, no traceback,
and nothing already in the results directory changes."""

from __future__ import annotations

import gzip
import hashlib
import struct
import textwrap
from pathlib import Path

import pytest

from hpsearch import cli

BASE = textwrap.dedent("""
    [study]
    name = "base"
    dataset = "digits"
    validation = 0.2
    epochs = 1
    trials = 2
    seed = 0
    test_top = 0

    [params]
    hidden     = [ { int = [8, 16] } ]
    lr         = { log_uniform = [0.01, 0.3] }
    batch_size = 50
    activation = "leaky_relu"
    alpha      = { uniform = [0.0, 0.3] }
    """)


def edit(old: str | None = None, new: str = "", study: str = "") -> str:
    """BASE with one line replaced (or ``new`` appended to [params]) and ``study`` lines added to [study]."""
    text = BASE if old is None else BASE.replace(old, new)
    if old is None and new:
        text += new + "\n"
    if study:
        text = text.replace("test_top = 0\n", f"test_top = 0\n{study}\n")
    return text


SPACE_CASES = {
    "malformed toml": ("[study\nname = 1\n", "malformed TOML"),
    "unknown section": (BASE + "\n[paramz]\nlr = 1\n", "paramz"),
    "unknown study key": (edit(study="validaton = 0.3"), "did you mean 'validation'"),
    "unknown parameter": (edit(new='activaton = "relu"'), "did you mean 'activation'"),
    "low >= high": (edit("lr         = { log_uniform = [0.01, 0.3] }", "lr = { uniform = [0.5, 0.1] }"), "params.lr"),
    "log scale low <= 0": (
        edit("lr         = { log_uniform = [0.01, 0.3] }", "lr = { log_uniform = [0.0, 0.5] }"),
        "params.lr: log_uniform needs 0 < low < high, got [0.0, 0.5]",
    ),
    "step does not divide": (
        edit("batch_size = 50", "batch_size = { int = [10, 95], step = 10 }"),
        "params.batch_size",
    ),
    "when on unknown parameter": (
        edit(
            "alpha      = { uniform = [0.0, 0.3] }",
            'alpha = { uniform = [0.0, 0.3], when = { activasion = "leaky_relu" } }',
        ),
        "activasion",
    ),
    "condition never holds": (
        edit(
            "alpha      = { uniform = [0.0, 0.3] }", 'alpha = { uniform = [0.0, 0.3], when = { activation = "relu" } }'
        ),
        "never",
    ),
    "choice with no options": (edit(new="optimizer = { choice = [] }"), "params.optimizer"),
    "unknown activation": (edit('activation = "leaky_relu"', 'activation = "relux"'), "relux"),
    "unknown activation in a choice": (
        edit('activation = "leaky_relu"', 'activation = { choice = ["relu", "gelu"] }'),
        "gelu",
    ),
    "unknown initializer": (edit(new='weight_init = "xavier"'), "xavier"),
    "unknown optimizer": (edit(new='optimizer = "adamw"'), "adamw"),
    "unknown normalizer": (edit(new='normalizer = "l2"'), "'l2'"),
    "unknown distribution keyword": (edit(new="momentum = { uniformm = [0.8, 0.9] }"), "uniformm"),
    "hidden layer of 0 nodes": (edit("hidden     = [ { int = [8, 16] } ]", "hidden = [0, 10]"), "params.hidden"),
    "no hidden layers": (edit("hidden     = [ { int = [8, 16] } ]", "hidden = []"), "params.hidden"),
    "dropout of 1": (edit(new="dropout = 1.0"), "params.dropout"),
    "negative learning rate": (edit("lr         = { log_uniform = [0.01, 0.3] }", "lr = -0.1"), "params.lr"),
    "validation above 1": (edit(study="validation = 1.5").replace("validation = 0.2\n", ""), "validation"),
    "validation of 0": (edit(study="validation = 0.0").replace("validation = 0.2\n", ""), "validation"),
    "trials 0 in the file": (edit(study="trials = 0").replace("trials = 2\n", ""), "trials"),
    "epochs 0": (edit(study="epochs = 0").replace("epochs = 1\n", ""), "epochs"),
    "unknown metric": (edit(study='metric = "accuracy"'), "metric"),
    "unknown sampler": (edit(study='sampler = "grid"'), "sampler"),
    "seed beyond what numpy and scikit-learn take": (
        edit(study="seed = 4294967296").replace("seed = 0\n", ""),
        "study.seed: must be in [0, 4294967295], got 4294967296",
    ),
    "batch larger than the training set": (edit("batch_size = 50", "batch_size = 5000"), "batch_size"),
    "wrong type": (edit("batch_size = 50", 'batch_size = "fifty"'), "params.batch_size"),
}


def snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def existing(tmp_path_factory):
    """A results directory with a finished study in it, which no bad input may touch."""
    root = tmp_path_factory.mktemp("bad")
    (root / "base.toml").write_text(BASE)
    assert cli.main(["run", str(root / "base.toml"), "--out", str(root / "out"), "-q", "--jobs", "1"]) == 0
    return root


def expect_one_line(capsys, code, message):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hpsearch: ")
    assert "Traceback" not in err
    assert message in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(SPACE_CASES))
def test_a_bad_space_file_gets_one_line_and_exit_code_2(existing, tmp_path, capsys, case):
    text, message = SPACE_CASES[case]
    space = tmp_path / "base.toml"  # same study name as the existing results
    space.write_text(text)
    before = snapshot(existing / "out")
    code = cli.main(["run", str(space), "--out", str(existing / "out"), "-q"])
    line = expect_one_line(capsys, code, message)
    assert str(space) in line or "run:" in line or "base.toml" in line
    assert snapshot(existing / "out") == before


def write_idx(path: Path, magic: int, dims: tuple, payload: bytes, gz: bool = True):
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload
    (gzip.open if gz else open)(path, "wb").write(raw)


def make_truncated_mnist(d: Path) -> Path:
    d.mkdir()
    write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, (20, 28, 28), bytes(20 * 28 * 28 - 100))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", 2049, (20,), bytes(range(10)) * 2)
    return d


def make_mismatched_mnist(d: Path) -> Path:
    d.mkdir()
    write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, (20, 28, 28), bytes(20 * 28 * 28))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", 2049, (19,), bytes(range(10)) + bytes(range(9)))
    return d


DATA_CASES = {
    "missing MNIST directory": (lambda t: "mnist:" + str(t / "nowhere"), "nowhere"),
    "MNIST directory without files": (lambda t: "mnist:" + str((t / "empty").mkdir() or t / "empty"), "empty"),
    "truncated MNIST file": (lambda t: "mnist:" + str(make_truncated_mnist(t / "trunc")), "t10k-images"),
    "MNIST counts that do not match": (lambda t: "mnist:" + str(make_mismatched_mnist(t / "mism")), "t10k"),
    "csv without a label column": (
        lambda t: (t / "a.csv").write_text("f1,f2\n1,2\n3,4\n") and "csv:" + str(t / "a.csv"),
        "label",
    ),
    "csv with non-numeric data": (
        lambda t: (t / "b.csv").write_text("f1,label\n1,0\nx,1\n2,1\n3,0\n") and "csv:" + str(t / "b.csv"),
        "f1",
    ),
    "npz without x_train": (lambda t: _npz(t) and "npz:" + str(t / "c.npz"), "x_train"),
    "unknown data set scheme": (lambda t: "imagenet:/data", "imagenet"),
}


def _npz(t):
    import numpy as np

    np.savez(t / "c.npz", y_train=np.arange(4))
    return True


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_gets_one_line_and_exit_code_2(existing, tmp_path, capsys, case):
    make, message = DATA_CASES[case]
    spec = make(tmp_path)
    before = snapshot(existing / "out")
    code = cli.main(
        ["run", str(existing / "base.toml"), "--dataset", spec, "--name", "data", "--out", str(existing / "out"), "-q"]
    )
    expect_one_line(capsys, code, message)
    assert snapshot(existing / "out") == before


OPTION_CASES = {
    "--trials 0": (["--trials", "0"], "--trials must be at least 1, got 0"),
    "--trials negative": (["--trials", "-2"], "--trials must be at least 1, got -2"),
    "--jobs 0": (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    "unknown option": (["--trails", "5"], "--trails"),
    "unknown sampler option": (["--sampler", "grid"], "grid"),
    "--seed negative": (["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    "--seed too large": (["--seed", "4294967296"], "--seed must be between 0 and 4294967295, got 4294967296"),
}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_options_get_one_line_and_exit_code_2(existing, capsys, case):
    argv, message = OPTION_CASES[case]
    before = snapshot(existing / "out")
    code = cli.main(["run", str(existing / "base.toml"), "--out", str(existing / "out"), *argv])
    expect_one_line(capsys, code, message)
    assert snapshot(existing / "out") == before


@pytest.mark.parametrize("command", ["check", "edge"])
def test_a_seed_out_of_range_for_check_and_edge_is_one_line(existing, capsys, command):
    code = cli.main([command, str(existing / "base.toml"), "--seed", "-5"])
    expect_one_line(capsys, code, "--seed must be between 0 and 4294967295, got -5")


def test_a_library_seed_out_of_range_is_refused_before_anything_is_written(existing, tmp_path):
    import hpsearch

    with pytest.raises(hpsearch.HPSearchError, match=r"--seed must be in \[0, 4294967295\], got -3"):
        hpsearch.run(existing / "base.toml", trials=2, seed=-3, out=tmp_path / "lib")
    assert not (tmp_path / "lib").exists()


def test_a_results_directory_of_a_different_space_is_refused_with_how_to_start_fresh(existing, tmp_path, capsys):
    other = tmp_path / "base.toml"
    other.write_text(BASE.replace("[0.01, 0.3]", "[0.01, 0.4]"))
    before = snapshot(existing / "out")
    code = cli.main(["run", str(other), "--out", str(existing / "out"), "-q"])
    line = expect_one_line(capsys, code, "different space")
    assert "--name" in line
    assert snapshot(existing / "out") == before


def test_an_unwritable_results_directory_is_refused(existing, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = cli.main(["run", str(existing / "base.toml"), "--out", str(blocker / "results"), "-q"])
    expect_one_line(capsys, code, "cannot write results")


def test_a_missing_space_file_is_named(tmp_path, capsys):
    code = cli.main(["run", str(tmp_path / "nope.toml")])
    expect_one_line(capsys, code, "nope.toml")


def test_worker_for_an_unknown_study_is_one_line(existing, capsys):
    url = "journal:" + str(existing / "out" / "base" / "optuna-journal.log")
    code = cli.main(["worker", "--storage", url, "--study", "nosuch"])
    expect_one_line(capsys, code, "no study 'nosuch'")
