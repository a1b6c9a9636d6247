"""Platforms without fork, fcntl or resource (Windows): reading and analysing work; run and worker say why not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpsearch import cli

REPO = Path(__file__).resolve().parents[1]

# what Windows lacks, taken away before hpsearch is imported
WITHOUT_POSIX = textwrap.dedent("""
    import multiprocessing, sys
    for name in ("fcntl", "resource", "termios"):
        sys.modules[name] = None
    multiprocessing.get_all_start_methods = lambda: ["spawn"]
    from hpsearch import cli
    sys.exit(cli.main(sys.argv[1:]))
""")

SPACE = """
[study]
name = "w"
dataset = "digits"
epochs = 2
trials = 6
test_top = 0

[params]
hidden = [ { int = [8, 32] } ]
lr = { log_uniform = [0.01, 0.5] }
activation = "leaky_relu"
alpha = { uniform = [0.0, 0.3] }
"""


def without_posix(*argv, cwd):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX, *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("platform")
    (d / "w.toml").write_text(textwrap.dedent(SPACE))
    assert cli.main(["run", str(d / "w.toml"), "--out", str(d / "out"), "-q", "--jobs", "1"]) == 0
    return d


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "w.toml"],
        ["show", "out/w"],
        ["regions", "out/w"],
        ["narrow", "out/w", "-o", "narrowed.toml"],
        ["plot", "out/w"],
    ],
)
def test_reading_and_analysis_commands_work_without_fork_or_fcntl(study, argv):
    done = without_posix(*argv, cwd=study)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_the_mlp_core_trains_without_fork_or_fcntl(tmp_path):
    code = WITHOUT_POSIX.split("from hpsearch import cli")[0] + textwrap.dedent("""
        from hpsearch.data import load
        from hpsearch.mlp import MLPConfig, train
        ds = load("digits")
        config = MLPConfig(hidden=(32,), epochs=5, lr=0.1, seed=0)
        h = train(config, ds.x_train / 16, ds.y_train, ds.x_test / 16, ds.y_test)
        assert h.best_value > 0.5, h.best_value
    """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "argv", [["run", "w.toml", "--out", "other"], ["worker", "--storage", "out/w/optuna-journal.log", "--study", "w"]]
)
def test_run_and_worker_say_in_one_line_why_they_cannot_and_what_works(study, argv):
    done = without_posix(*argv, cwd=study)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "forked process" in lines[0] and "WSL" in lines[0], done.stderr
    assert not (study / "other").exists()
