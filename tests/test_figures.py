"""Figures and written bounds that read well: nothing clipped, whole epochs, bounds on a sensible grid."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.analysis.studies import make_study

from hpsearch.analysis import plots
from hpsearch.analysis.narrow import shrink
from hpsearch.results import open_results


def _inside(fig, artist) -> bool:
    renderer = fig.canvas.get_renderer()
    box, page = artist.get_window_extent(renderer), fig.bbox
    return box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1


def test_the_divergence_figure_of_one_trial_keeps_its_title_and_legend_inside(tmp_path):
    res = open_results(make_study(tmp_path, n=40))
    fig = plots.divergence(res, 1, None)
    assert fig is not None
    fig.canvas.draw()
    assert _inside(fig, fig._suptitle), "the title is cut"
    assert fig.legends and all(_inside(fig, legend) for legend in fig.legends), "the legend is cut"


def test_learning_curves_have_whole_epoch_ticks(tmp_path):
    res = open_results(make_study(tmp_path, n=40))
    fig = plots.curves(res, 3, None)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


class _Dist:
    def __init__(self, low, high, log=False, step=None):
        self.low, self.high, self.log, self.step = low, high, log, step


@pytest.mark.parametrize(
    "values, dist, expected",
    [
        ([0.0072, 0.2, 0.31], _Dist(0.0, 0.4), (0.0, 0.35)),  # not 0.0036: the grid of a 0–0.4 range is 0.01
        ([0.33, 0.37], _Dist(0.0, 1.0), (0.23, 0.47)),
        ([0.0123, 0.2], _Dist(0.005, 0.5, log=True), (0.0077, 0.32)),  # a log range keeps two significant digits
    ],
)
def test_narrowed_bounds_are_rounded_to_what_the_range_supports(values, dist, expected):
    lo, hi = shrink(np.array(values), dist)
    assert (lo, hi) == pytest.approx(expected)
    assert lo <= min(values) and hi >= max(values)
