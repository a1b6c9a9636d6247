"""The example notebook runs end to end in a real Jupyter kernel, so it cannot rot."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "leaky_relu.ipynb"


def _texts(cell) -> list[str]:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", ""))
    return out


@pytest.mark.slow
def test_the_example_notebook_runs_the_study_and_its_numbers_are_the_studys(tmp_path):
    work = tmp_path / "examples"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    (tmp_path / "search_spaces").symlink_to(ROOT / "search_spaces")
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    # a cell that raises fails the test here (CellExecutionError), with the cell and its traceback
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = "\n".join(t for c in code for t in _texts(c))

    trials = pd.read_csv(work / "results" / "leaky-relu-random" / "trials.csv")
    assert len(trials) == 100
    assert re.search(r"\b100/100\b", outputs), "the progress line in the notebook should end at 100/100"
    best = trials[trials["state"] == "COMPLETE"].sort_values(["value", "number"], ascending=[False, True]).iloc[0]
    m = re.search(r"test accuracy of trial (\d+): (0\.\d{4})", outputs)
    assert m and int(m.group(1)) == best["number"]
    assert float(m.group(2)) == pytest.approx(best["test_accuracy"], abs=5e-5)
    plot = next(c for c in code if 'study.plot("lr")' in c.source)
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)  # a Figure shows itself, not its repr
    assert "by lr" in outputs and "Regions(" not in outputs  # print(study.regions()) prints the report
    assert "Traceback" not in outputs and "Warning" not in outputs
    assert (work / "best.npz").is_file()
