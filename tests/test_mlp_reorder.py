"""The input-order planner's column blocks against brute force."""

import itertools

import numpy as np
import pytest

from hpsearch.mlp import MLP, MLPConfig
from hpsearch.mlp._reorder import MAX_BLOCKS, _cuts, _expected_skip
from hpsearch.mlp._workspace import Workspace


def block_cost(first, cuts, n_inputs, overhead, row_columns):
    """Sum over blocks of overhead + (share of rows that meet it) * (width + row_columns), plainly."""
    ends = list(cuts[1:]) + [n_inputs]
    total = 0.0
    for lo, hi in zip(cuts, ends):
        meets = sum(1 for f in first if f < hi) / len(first)
        total += overhead + meets * (hi - lo + row_columns)
    return total


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("overhead, row_columns", [(0.0, 0.0), (5.0, 3.0), (40.0, 10.0)])
def test_the_cuts_are_the_cheapest_among_the_candidate_points(seed, overhead, row_columns):
    rng = np.random.default_rng(seed)
    n_inputs = int(rng.integers(30, 120))
    first = np.minimum(rng.geometric(rng.uniform(0.02, 0.2), 200), n_inputs - 1)
    cuts, saved = _cuts(first, n_inputs, overhead, row_columns)
    quantiles = np.quantile(first, np.arange(1, MAX_BLOCKS) / MAX_BLOCKS, method="lower")
    candidates = sorted({int(q) for q in quantiles if 0 < q < n_inputs})
    best = min(
        block_cost(first, [0, *chosen], n_inputs, overhead, row_columns)
        for r in range(len(candidates) + 1)
        for chosen in itertools.combinations(candidates, r)
    )
    assert cuts[0] == 0 and list(cuts) == sorted(set(cuts.tolist()))
    assert block_cost(first, cuts.tolist(), n_inputs, overhead, row_columns) == pytest.approx(best, rel=1e-12)
    dense = overhead + n_inputs + row_columns
    assert saved == pytest.approx((dense - best) / dense, rel=1e-9, abs=1e-12)


def test_the_expected_skip_counts_the_products_the_blocks_leave_out():
    first = np.array([0, 3, 3, 5, 9, 9, 9, 12])
    cuts, n_inputs = np.array([0, 4, 10]), 16
    # block [0, 4) meets rows with first < 4 (3 rows), [4, 10) < 10 (7), [10, 16) all 8
    products = (3 * 4 + 7 * 6 + 8 * 6) / (8 * 16)
    assert _expected_skip(first, cuts, n_inputs) == pytest.approx(1 - products)


def test_a_workspace_counts_the_rows_each_block_meets():
    model = MLP(MLPConfig(hidden=(3,)), 16, 2)
    ws = Workspace(model, 6, train=True)
    ws.set_blocks(np.array([0, 4, 10]), np.zeros(6, np.intp))
    first_sorted = np.array([[0, 3, 4, 9, 10, 15], [12, 12, 13, 14, 15, 15]])
    np.testing.assert_array_equal(ws.block_reach(first_sorted), [[2, 4, 6], [0, 0, 6]])
