"""The speed benchmark's own parts: the careful NumPy trainer it measures hpsearch against,
and the script's handling of its options (the timings themselves are for the script)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import careful_mlp  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        (d.data / 16.0).astype(np.float32), d.target, test_size=0.2, stratify=d.target, random_state=0
    )
    return x_train, y_train, x_val, y_val


@pytest.mark.parametrize("batch", [10, 100])
def test_the_careful_trainer_learns_and_its_two_first_layer_forms_agree(digits, batch, monkeypatch):
    # the first layer's product is taken sample-major from SAMPLE_MAJOR_ROWS rows, feature-major
    # below: the same arithmetic up to rounding, so the same accuracy either way
    results = []
    for rows in (1, 10**9):  # always sample-major, never
        monkeypatch.setattr(careful_mlp, "SAMPLE_MAJOR_ROWS", rows)
        results.append(careful_mlp.train_careful(*digits, hidden=(64, 32), batch=batch, epochs=8, lr=0.1, seed=0))
    assert results[0] >= 0.9, results
    assert results[0] == pytest.approx(results[1], abs=2 / len(digits[3]))


def bench(*args, timeout=120):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_core.py"), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--repeats", "-2"], "--repeats must be at least 1, got -2"),
        (["--batches", "100", "ten"], "--batches must be a whole number, got 'ten'"),
        (["--data", "cifar"], "invalid choice: 'cifar'"),
        (["--mnist", "/nonexistent/mnist", "--data", "mnist"], "MNIST not found: /nonexistent/mnist"),
    ],
)
def test_bad_benchmark_options_get_one_line_and_exit_2(args, message):
    result = bench(*args, "--no-torch")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench_core: ") and message in lines[0], result.stderr
    assert "samples/s" not in result.stdout  # nothing was timed


def test_a_quick_benchmark_prints_every_contenders_speed_and_accuracy():
    result = bench("--quick", "--data", "random", "--batches", "100", "--no-torch", "--clock", "cpu", timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("batch epochs"))
    assert out[header].split("|")[1].split() == ["hpsearch", "hp-dense", "careful", "sklearn"]
    speeds = out[header + 2].split("|")
    assert speeds[0].split() == ["100", "3"]  # 10 epochs at batch 100, a third of them with --quick
    assert all(float(v.replace(",", "")) > 0 for v in speeds[1].split())
    assert all(float(v.rstrip("x")) > 0 for v in speeds[2].split())
    accuracy = out[out.index("validation accuracy after the last run") + 1].split("|")[1].split()
    assert len(accuracy) == 4 and all(0.0 <= float(a) <= 1.0 for a in accuracy)
