"""One ranking and one set of tables everywhere: run's output, summary.md and show."""

from __future__ import annotations

import re
import textwrap

from hpsearch import cli

SPACE = """
[study]
name = "tb"
dataset = "digits"
epochs = 3
trials = 24
test_top = 3

[params]
hidden = [ { int = [4, 24] } ]
lr = { log_uniform = [0.002, 0.5] }
batch_size = { int = [20, 60], step = 20 }
"""


def _table(text: str, title: str) -> list[list[str]]:
    """The rows (cells) of the table under the line that starts with ``title`` (text or Markdown)."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip("# ").startswith(title))
    rows = []
    for line in lines[at + 1 :]:
        if not line.strip():
            if rows:
                break
            continue
        if set(line.replace("|", "").strip()) <= set("- "):
            continue
        rows.append([c for c in re.split(r"\s*\|\s*|\s{2,}", line.strip()) if c])
    return rows[1:]  # without the header


def test_run_summary_md_and_show_rank_the_same_trials_the_same_way(tmp_path, capsys):
    path = tmp_path / "tb.toml"
    path.write_text(textwrap.dedent(SPACE))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "-q", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert cli.main(["show", str(out / "tb")]) == 0
    shown = capsys.readouterr().out
    summary = (out / "tb" / "summary.md").read_text()
    for title in ("Best", "Worst"):
        a, b, c = (_table(t, title) for t in (printed, shown, summary))
        assert a and [r[:2] for r in a] == [r[:2] for r in b] == [r[:2] for r in c], (title, a, b, c)
    worst = _table(printed, "Worst")
    ranks = [int(r[0]) for r in worst]
    n = int(re.search(r"Best \d+ of (\d+) completed", printed).group(1))
    assert ranks == list(range(n, n - len(ranks), -1))  # global ranks, the worst first


def test_a_missing_whole_number_is_blank_not_na():
    import pandas as pd

    from hpsearch.results import table

    df = pd.DataFrame({"number": pd.array([1, 2], dtype="Int64"), "stopped_early": pd.array([5, None], dtype="Int64")})
    lines = table(df, ["number", "stopped_early"]).splitlines()
    assert "<NA>" not in "\n".join(lines) and lines[2].split() == ["2"]
