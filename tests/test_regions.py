"""``hpsearch regions``: failure rates per bin and kind, the 2-D map, the boundary in words, --compare."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from fixtures.analysis.studies import make_study

from hpsearch import cli
from hpsearch.analysis.regions import divergence_edge, make_binning
from hpsearch.results import open_results


def regions(capsys, *argv):
    code = cli.main(["regions", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def block(out: str, title: str) -> list[str]:
    """The lines of the table whose header starts with ``title``, up to the next blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((j for j in range(start, len(lines)) if not lines[j].strip()), len(lines))
    return lines[start:end]


def row_numbers(line: str) -> tuple[int, int]:
    """(trials, failed) of a bin row: trials and ok follow the label, then one count per kind, then the rate."""
    m = re.search(r"\s{2,}(\d+)\s+(\d+)((?:\s+\d+)*)\s+(\d+ %|—)", line)
    trials, ok = int(m.group(1)), int(m.group(2))
    assert sum(int(k) for k in m.group(3).split()) == trials - ok
    return trials, trials - ok


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("regions"), n=160)


@pytest.fixture(scope="module")
def report(study):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["regions", str(study)]) == 0
    return buf.getvalue()


def test_lr_gets_log_bins_over_the_searched_range_with_counts_that_add_up(study, report):
    rows = block(report, "Failure by lr (log bins)")[1:]
    assert len(rows) == 5
    edges = np.geomspace(0.005, 3.0, 6)
    assert rows[0].strip().startswith("0.005 – ")
    assert rows[-1].strip().startswith(f"{edges[4]:.2g} – 3")
    df = pd.read_csv(study / "trials.csv", keep_default_na=False, na_values=[""])
    fin = df[df.state.isin(["COMPLETE", "PRUNED"])]
    div = fin.prune_reason.isin(["overflow", "nan"])
    counts = [row_numbers(r) for r in rows]
    assert sum(n for n, _ in counts) == len(fin)
    assert sum(d for _, d in counts) == div.sum()
    bins = np.clip(np.searchsorted(edges[1:], fin.lr), 0, 4)
    assert [n for n, _ in counts] == [int((bins == i).sum()) for i in range(5)]
    # nothing diverges at small lr; most do in the top bin
    assert counts[0][1] == 0 and counts[-1][1] / counts[-1][0] > 0.6


def test_the_bin_of_the_best_run_is_marked(report):
    rows = block(report, "Failure by lr (log bins)")[1:]
    assert sum("◀ best run" in r for r in rows) == 1


def test_categories_get_one_row_each_and_a_conditional_parameter_a_not_sampled_row(report):
    rows = block(report, "Failure by normalizer (categories)")[1:]
    assert [r.split()[0] for r in rows] == ["min_max", "z_score"]
    alpha = block(report, "Failure by alpha (bins)")[1:]
    assert alpha[-1].strip().startswith("not sampled")
    assert alpha[0].strip().startswith("0 – 0.08")


def test_an_int_with_few_values_gets_one_row_per_value(study, capsys):
    code, out, _ = regions(capsys, study, "--params", "batch_size", "--bins", 9)
    assert code == 0
    rows = block(out, "Failure by batch_size (values)")[1:]
    assert [r.split()[0] for r in rows] == [str(v) for v in range(10, 100, 10)]


def test_the_boundary_names_lr_with_counts_and_the_lower_edge_of_z_score(report):
    tree = block(report, "Boundary (")  # the decision tree, or the lr edge per normalizer when that predicts better
    assert any(re.search(r"lr > [\d.]+.*→ failed \d+ of \d+ \(\d+ %\)", line) for line in tree[1:])
    short = re.search(
        r"In short: training fails when lr > ([\d.]+) \((\d+) of (\d+) trials there failed; "
        r"(\d+) of (\d+) below\)",
        report,
    )
    assert short, report
    assert 0.25 < float(short.group(1)) < 1.1
    assert int(short.group(3)) + int(short.group(5)) == 160
    assert re.search(r"with z_score the threshold is lower: lr 0\.\d+ against [\d.]+ with min_max", report)
    assert re.search(r"The best runs sit (just below|close to) the edge", report)


def test_the_pair_table_gives_divergence_rates_per_cell(study, capsys):
    code, out, _ = regions(capsys, study, "--params", "lr", "--pair", "lr,normalizer")
    assert code == 0
    table = block(out, "Failure rate by lr × normalizer")
    assert "min_max" in table[1] and "z_score" in table[1]
    cells = [re.findall(r"(\d+)% \((\d+)/(\d+)\)", line) for line in table[2:]]
    assert len(cells) == 5 and all(len(c) == 2 for c in cells)
    total = sum(int(n) for row in cells for _, _, n in row)
    assert total == 160
    assert all(round(100 * int(d) / int(n)) == int(r) for row in cells for r, d, n in row)


def test_compare_puts_two_studies_side_by_side_and_compares_their_edges(tmp_path, capsys):
    a = make_study(tmp_path, "minmax", n=120, only="min_max", seed=1)
    b = make_study(tmp_path, "zscore", n=120, only="z_score", seed=2)
    code, out, _ = regions(capsys, a, "--compare", b, "--params", "lr,batch_size")
    assert code == 0
    table = block(out, "Failure by lr (log bins)")
    title = out.splitlines()[out.splitlines().index(table[0]) - 1]
    assert "[minmax]" in title and "[zscore]" in title
    assert all(line.count("│") == 1 for line in table)
    assert "[minmax]" in out and "[zscore]" in out
    assert re.search(
        r"Compared: minmax fails when lr > [\d.]+, zscore when lr > [\d.]+ — the edge of zscore is "
        r"[\d.]+× lower",
        out,
    ), out


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"n": 40, "diverge": False}, "no trial failed (0 of 40 finished)"),
        ({"n": 7}, "too few to say where failure starts"),
    ],
)
def test_the_boundary_is_honest_when_the_data_cannot_say(tmp_path, capsys, kwargs, expected):
    code, out, _ = regions(capsys, make_study(tmp_path, **kwargs))
    assert code == 0 and expected in out
    assert "In short" not in out


def test_every_trial_diverged_is_said_plainly(tmp_path, capsys):
    d = make_study(tmp_path, n=60)
    df = pd.read_csv(d / "trials.csv", keep_default_na=False, na_values=[""])
    df[df.state == "PRUNED"].to_csv(d / "trials.csv", index=False)
    code, out, _ = regions(capsys, d)
    assert code == 0 and "every finished trial failed" in out
    assert "nothing in the space searched learned" in out


def test_a_copied_directory_without_meta_json_still_gets_log_bins(tmp_path, capsys):
    d = make_study(tmp_path, n=60, meta=False, running=3)
    code, out, _ = regions(capsys, d, "--params", "lr")
    assert code == 0
    assert "Failure by lr (log bins)" in out
    assert "rates count the 57 finished trials" in out


def test_where_restricts_the_analysis(study, capsys):
    code, out, _ = regions(capsys, study, "--params", "lr", "--where", "normalizer == 'z_score'")
    assert code == 0
    df = pd.read_csv(study / "trials.csv")
    n = int((df.normalizer == "z_score").sum())
    assert f"where normalizer == 'z_score': {n} of 160 trials" in out
    rows = block(out, "Failure by lr")[1:]
    assert sum(row_numbers(r)[0] for r in rows) == n


def test_divergence_edge_finds_a_planted_threshold_and_nothing_in_noise(tmp_path):
    res = open_results(make_study(tmp_path, n=200, only="min_max"))
    edge = divergence_edge(res, res.trials, "lr")
    assert edge is not None and edge.side == ">" and 0.7 < edge.threshold < 1.5
    assert edge.rate > 0.75 and edge.p_value < 0.01
    assert divergence_edge(res, res.trials, "alpha") is None
    assert divergence_edge(res, res.trials, "hidden_1") is None


def test_bins_are_shared_when_comparing_so_rows_line_up(tmp_path):
    a = open_results(make_study(tmp_path, "a", n=20))
    b = open_results(make_study(tmp_path, "b", n=20, seed=3))
    binning = make_binning("lr", [a, b], 4)
    assert binning.labels[0].startswith("0.005") and binning.labels[-1].endswith("3")
    assert binning.assign(pd.Series([0.005, 3.0, np.nan])).tolist() == [0, 3, -1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--params", "lrr"], "--params: unknown parameter 'lrr'; did you mean 'lr'?"),
        (["--params", "optimizer"], "--params: optimizer was not searched"),
        (["--pair", "lr"], "--pair takes two different parameters like lr,alpha, got 'lr'"),
        (["--pair", "lr,alpah"], "did you mean 'alpha'?"),
        (["--bins", "1"], "--bins must be between 2 and 50, got 1"),
        (["--compare", "/nonexistent/study"], "/nonexistent/study: no such results directory"),
        (["--where", "lr >> 2"], "not a valid condition"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(study, capsys, argv, message):
    code, out, err = regions(capsys, study, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: ") and message in lines[0], err
