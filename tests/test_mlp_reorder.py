"""The input-order planner's column blocks against brute force."""

import itertools

import numpy as np
import pytest

from hpsearch.mlp import MLP, MLPConfig
from hpsearch.mlp._reorder import (
    BLOCK_OVERHEAD_FLOPS,
    BLOCK_ROW_COLUMNS,
    MAX_BLOCKS,
    MIN_BLOCK_SKIP,
    REORDER_MIN_SAVING,
    SAMPLE_ROWS,
    InputOrder,
    _cuts,
    _expected_skip,
)
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


def full_plan(x, constant, width, batch, epochs, min_saving, min_block_skip, block_overhead):
    """The planner's decision computed in full, without its shortcuts: ``None``, or
    ``(varying inputs in order, offsets, cuts, skipped)``."""
    n_features = len(constant)
    varying = np.flatnonzero(~constant)
    k = len(varying)
    if not k:
        return None

    def saving(skipped):
        return (n_features - k + skipped * k) / n_features * epochs

    rows = np.arange(0, len(x), max(1, len(x) // SAMPLE_ROWS))
    sample = x[rows][:, varying]
    minimum = sample.min(axis=0)
    zeros = (sample == 0).sum(axis=0)
    shift = (sample == minimum).sum(axis=0) > zeros
    offsets = np.where(shift, minimum, 0).astype(x.dtype)
    nonzero = sample != offsets
    counts = nonzero.sum(axis=0)
    blocks, skipped = True, 0.0
    if saving(1.0 - counts.sum() / nonzero.size) < min_saving:
        blocks = False
        if saving(0.0) < min_saving:
            return None
    ranked = np.argsort(counts, kind="stable")
    cuts = None
    if blocks:
        first = nonzero[:, ranked].argmax(axis=1)
        overhead = block_overhead / (4.0 * batch * width)
        cuts, time_saved = _cuts(first, k, overhead, BLOCK_ROW_COLUMNS if block_overhead else 0.0)
        skipped = _expected_skip(first, cuts, k)
        if len(cuts) == 1 or skipped <= 0 or time_saved < min_block_skip:
            cuts, skipped = None, 0.0
    if saving(skipped) < min_saving:
        return None
    return varying[ranked], offsets[ranked], cuts, skipped


def sparse_images(n, rng, nonzero=0.2):
    """MNIST-like rows: a blank border (constant 0), pixels nonzero more often near the
    middle, some rows denser than others."""
    r2 = ((np.arange(26) - 12.5) ** 2)[:, None] + ((np.arange(26) - 12.5) ** 2)[None, :]
    p = np.exp(-r2 / 60.0) * rng.uniform(0.3, 1.7, (n, 1, 1)) * nonzero * 3
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 1:27, 1:27] = rng.random((n, 26, 26)) * (rng.random((n, 26, 26)) < p)
    return x.reshape(n, -1)


DATA = {
    "mnist-like": lambda rng: sparse_images(2000, rng),
    "mnist-like, few rows": lambda rng: sparse_images(300, rng),
    "leading zeros": lambda rng: np.where(
        np.arange(200) >= rng.integers(0, 200, (1500, 1)), rng.random((1500, 200)), 0
    ).astype(np.float32),
    "dense": lambda rng: rng.random((2000, 784), dtype=np.float32),
    "z-scored": lambda rng: ((lambda s: (s - s.mean(0)) / (s.std(0) + 1e-3))(sparse_images(1000, rng))).astype(
        np.float32
    ),
    "shifted up": lambda rng: sparse_images(1000, rng) + np.float32(0.5),
}
MODES = {
    "auto": (REORDER_MIN_SAVING, MIN_BLOCK_SKIP, BLOCK_OVERHEAD_FLOPS),
    "always": (0.0, 0.0, 0.0),
}


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("mode", MODES)
def test_the_planners_shortcuts_decide_as_the_full_computation(data, mode):
    rng = np.random.default_rng(list(DATA).index(data))
    x = DATA[data](rng)
    constant = (x == x[0]).all(axis=0)
    min_saving, min_block_skip, block_overhead = MODES[mode]
    decisions = set()
    for width in (16, 100, 500):
        model = MLP(MLPConfig(hidden=(width,)), x.shape[1], 3)
        W1 = model.W[0].copy()
        for batch in (1, 2, 5, 10, 32, 100, 256, 1000):
            for epochs in (1, 2, 3, 6, 10, 30):
                want = full_plan(x, constant, width, batch, epochs, min_saving, min_block_skip, block_overhead)
                got = InputOrder.plan(
                    model, x, constant, x[0], x[:0], batch, epochs, min_saving, min_block_skip, block_overhead
                )
                where = (width, batch, epochs)
                assert (got is None) == (want is None), where
                decisions.add((got is not None, got is not None and got.cuts is not None))
                if got is None:
                    np.testing.assert_array_equal(model.W[0], W1)  # refused: W_1 untouched
                    continue
                order, offsets, cuts, skipped = want
                k = len(order)
                np.testing.assert_array_equal(got.order[:k], order, err_msg=str(where))
                np.testing.assert_array_equal(
                    np.zeros(k, x.dtype) if got.train.offsets is None else got.train.offsets, offsets
                )
                assert (got.cuts is None) == (cuts is None), where
                if cuts is not None:
                    np.testing.assert_array_equal(got.cuts, cuts)
                assert got.skipped == skipped, where
                got.restore(model)
                np.testing.assert_array_equal(model.W[0], W1)
    if mode == "auto":  # the grid sees refusals and plans (with column blocks where rows lead with zeros)
        expected = {"dense": {(False, False)}, "leading zeros": {(False, False), (True, True)}}
        assert decisions == expected.get(data, {(False, False), (True, False)})
