"""The input-order planner: which inputs the first layer's products may skip, and in what order."""

from __future__ import annotations

import numpy as np

from hpsearch.mlp._network import MLP
from hpsearch.mlp._workspace import ConstantInputs

# train(reorder="auto") reorders the inputs when that saves at least this many epochs'
# worth of the first layer's products over the run: the reordering itself (a copy of the
# inputs, and a few passes over them) costs about a third of one epoch's.
REORDER_MIN_SAVING = 0.5
REORDER_MODES = ("auto", "always", "never")
SAMPLE_ROWS = 256  # training rows looked at to rank the inputs by how often they are nonzero
# A column block costs two BLAS calls per step (forward product, weight update) whatever
# its size: about 3.4 us, as many floating-point operations as BLAS does in that time at
# its peak (~200 GFLOP/s on one core here). Blocks are worth their cost only where they
# skip more than that.
BLOCK_OVERHEAD_FLOPS = 700_000
# and per row it meets, as much again as this many inputs' products: the rows' partial
# sums (forward) and gradients (update) travel through the cache once per block
BLOCK_ROW_COLUMNS = 32
MAX_BLOCKS = 16  # the blocks start at quantiles of the rows' first nonzero input, in 1/16ths
COPY_ROWS = 256  # rows per chunk of the reordered copy of the training inputs
MIN_BLOCK_SKIP = 0.1  # blocks are used when they save at least this share of the products' time


def _beats(bound: float, needed: float) -> bool:
    """Whether an upper ``bound`` on a saving could reach ``needed`` (with room for rounding:
    a refusal from a bound must never refuse what the exact computation would accept)."""
    return bound >= needed - 1e-9 * (abs(needed) + 1.0)


class InputOrder:
    """The rows of ``W_1`` (and the data's columns) reordered so that the first layer's
    products skip what is known to be 0; :meth:`restore` puts them back in the data's
    order. The same arithmetic up to rounding: only products by zero and by constants
    are left out (an input shifted by its minimum, see ``ConstantInputs.offsets``, is
    one subtraction away from the data).

    Order: the inputs that vary across the training rows, sparsest first; then those
    constant in training but not in validation; then those constant in both.

    - Constant inputs are folded into the bias (:class:`ConstantInputs`): training takes
      the first layer's products over the varying inputs only, evaluation over the
      first two groups.
    - Sparsest first: a row is 0 in every input before its first nonzero one. The
      inputs are split into a few column blocks (``cuts``, among the 16ths of the rows'
      first nonzero input, as many as pay for their calls: :func:`_cuts`) and the rows
      of a batch sorted by their first nonzero input (their order in a batch changes
      nothing but rounding, and which dropout mask each row draws): a block then meets
      a prefix of the rows,
      those whose first nonzero input comes before its end, and its products (forward,
      and the weight gradient) take those rows only -- large products, which BLAS runs
      near its peak. Evaluation sorts its rows the same way once and starts each chunk
      at its first row's first nonzero input.

    On MNIST at batch 100 the first layer's products then cover about 60 % of the
    inputs' (``python scripts/bench_core.py`` prints the plan). :meth:`plan` returns
    ``None`` when the products saved over the run (in epochs' worth of first-layer
    products) are fewer than ``min_saving``, or when no input varies. Blocks are used
    when they save at least ``min_block_skip`` of the products' time, each costing
    ``block_overhead`` floating-point operations' worth per step.
    """

    def __init__(self, order, train: ConstantInputs, evaluate: ConstantInputs, cuts: np.ndarray | None, skipped: float):
        self.order, self.train, self.evaluate, self.cuts = order, train, evaluate, cuts
        self.skipped = skipped  # share of the varying inputs' products the blocks skip (estimated)
        self.first = None  # per training row, its first nonzero input (with cuts)

    @property
    def blocks(self) -> int:
        return 1 if self.cuts is None else len(self.cuts)

    @classmethod
    def plan(
        cls,
        model: MLP,
        x,
        constant,
        values,
        x_val,
        batch: int,
        epochs: int,
        min_saving: float = REORDER_MIN_SAVING,
        min_block_skip: float = MIN_BLOCK_SKIP,
        block_overhead: float = BLOCK_OVERHEAD_FLOPS,
    ) -> InputOrder | None:
        n_features = len(constant)
        varying = np.flatnonzero(~constant)
        k = len(varying)
        if not k:
            return None

        def saving(skipped: float) -> float:  # epochs' worth of first-layer products saved
            return (n_features - k + skipped * k) / n_features * epochs

        # Cheap refusals first, from facts that cost nothing. The blocks skip at most
        # everything; and a plan of m >= 2 blocks saves (see _cuts) at most its skipped
        # products minus the (m - 1) * overhead of its extra blocks, so at most
        # k - 1 - overhead columns' worth of the dense cost: when that is under
        # min_block_skip, there are no blocks and only the constant inputs can pay.
        if saving(1.0) < min_saving:
            return None
        # one column of the inputs costs 2 products of batch x width (forward, update)
        overhead = block_overhead / (4.0 * batch * model.sizes[1])
        row_columns = BLOCK_ROW_COLUMNS if block_overhead else 0.0
        blocks = _beats(k - 1 - overhead, (overhead + k + row_columns) * min_block_skip)
        if not blocks and saving(0.0) < min_saving:
            return None

        # the sample: every step-th row (a view), all columns; the statistics are then read
        # at the varying columns (the counts are exact in uint16: at most 2 * SAMPLE_ROWS rows)
        sample = x[:: max(1, len(x) // SAMPLE_ROWS)]
        n_rows = len(sample)
        minimum = np.minimum.reduce(sample, axis=0)[varying]
        nonzero = sample != 0
        zeros = n_rows - np.add.reduce(nonzero.view(np.uint8), axis=0, dtype=np.uint16)[varying].astype(np.intp)
        # an input whose minimum (in the sample) is more common than 0 (z-scored pixels, say)
        # is shifted by it: any offset gives the same arithmetic, this one the most zeros.
        # A positive minimum has no zeros to lose (shift); a minimum of 0 is one (no shift).
        shift = minimum > 0
        negative = np.flatnonzero(minimum < 0)
        if len(negative):
            cols = varying[negative]
            at_minimum = np.add.reduce(sample[:, cols] == minimum[negative], axis=0, dtype=np.intp)
            shift[negative] = at_minimum > zeros[negative]
        offsets = np.where(shift, minimum, 0).astype(x.dtype)
        if shift.any():
            full_offsets = np.zeros(n_features, x.dtype)
            full_offsets[varying] = offsets
            nonzero = sample != full_offsets
            counts = np.add.reduce(nonzero.view(np.uint8), axis=0, dtype=np.uint16)[varying].astype(np.intp)
        else:
            counts = n_rows - zeros
        # the blocks skip at most the (shifted) zeros: when even those do not pay, stop here
        skipped = 0.0
        if blocks and saving(1.0 - counts.sum() / (n_rows * k)) < min_saving:
            blocks = False
        if not blocks and saving(0.0) < min_saving:
            return None
        # rank the varying inputs by how often they are nonzero (once shifted), on the sample
        ranked = np.argsort(counts, kind="stable")
        varying, offsets = varying[ranked], offsets[ranked]
        cuts = None
        if blocks:
            first = nonzero.take(varying, axis=1, mode="clip").argmax(axis=1)
            # the blocks skip at most each row's leading zeros (mean(first) of the k inputs'
            # products), and save at most that minus one block's overhead (see above): when
            # neither bound could pass, the cuts would be refused, skip the search for them
            most = float(first.mean()) if len(first) else 0.0
            if not _beats(saving(most / k), min_saving) and saving(0.0) < min_saving:
                return None  # (saving() grows with the skip: these blocks could not pay)
            if _beats(most - overhead, (overhead + k + row_columns) * min_block_skip):
                cuts, time_saved = _cuts(first, k, overhead, row_columns)
                skipped = _expected_skip(first, cuts, k)
                if len(cuts) == 1 or skipped <= 0 or time_saved < min_block_skip:  # not worth a sort per epoch
                    cuts, skipped = None, 0.0
        if saving(skipped) < min_saving:
            return None

        const = np.flatnonzero(constant)
        if len(x_val) and len(const):  # folded in evaluation too where validation holds the same value
            same = (x_val[:, const] == values[const]).all(axis=0)
        else:
            same = np.ones(len(const), bool)
        order = np.concatenate([varying, const[~same], const[same]])

        def folded(active, shifts):
            tail = values[order[active:]]
            return ConstantInputs(active, tail.copy() if tail.any() else None, shifts if shifts.any() else None)

        # evaluation shifts the inputs constant in training alone by that constant
        eval_offsets = np.concatenate([offsets, values[const[~same]]]).astype(x.dtype)
        plan = cls(order, folded(k, offsets), folded(len(eval_offsets), eval_offsets), cuts, skipped)
        W1 = model.W[0]
        W1[...] = W1[order]
        return plan

    def training_inputs(self, x: np.ndarray) -> np.ndarray:
        """The training rows' varying inputs, in the new order, shifted (and ``first``)."""
        x, self.first = _gather(x, self.order[: self.train.active], self.train.offsets, self.cuts is not None)
        return x

    def evaluation_set(self, x: np.ndarray, y: np.ndarray, rows: int):
        """``(x, y, starts)`` for :class:`_Evaluator`: the inputs in the new order, the rows
        sorted by their first nonzero input, and where each chunk of ``rows`` starts."""
        x, first = _gather(x, self.order[: self.evaluate.active], self.evaluate.offsets, True)
        by_first = np.argsort(first, kind="stable")
        return x.take(by_first, axis=0, mode="clip"), y[by_first], first[by_first[::rows]].tolist()

    def restore(self, model: MLP) -> None:
        W1 = model.W[0]
        W1[self.order] = W1.copy()


def _gather(x: np.ndarray, columns: np.ndarray, offsets: np.ndarray | None, first: bool):
    """``(x[:, columns] - offsets, first nonzero input per row or None)``, in chunks of rows
    that stay in the cache between the gather, the shift and the search for the first
    nonzero input (~20 % less time than three passes over the whole copy)."""
    out = np.empty((len(x), len(columns)), x.dtype)
    firsts = np.empty(len(x), np.intp) if first else None
    for start in range(0, len(x), COPY_ROWS):
        chunk = out[start : start + COPY_ROWS]
        x[start : start + COPY_ROWS].take(columns, axis=1, out=chunk, mode="clip")
        if offsets is not None:
            chunk -= offsets
        if first:
            np.not_equal(chunk, 0).argmax(axis=1, out=firsts[start : start + COPY_ROWS])
    return out, firsts


def _cuts(
    first: np.ndarray, n_inputs: int, overhead: float, row_columns: float = BLOCK_ROW_COLUMNS
) -> tuple[np.ndarray, float]:
    """Where the column blocks start (0 first), and the share of the first layer's product
    time they save, for rows whose first nonzero inputs are like ``first`` (a sample).

    Block j meets the share F(end_j) of the rows whose first nonzero input comes before
    its end and costs ``overhead + F(end_j) * (width_j + BLOCK_ROW_COLUMNS)`` (in
    columns' worth of full-batch products); the starts, chosen among the 16ths of
    ``first``, minimize the sum (dynamic programming over the candidates)."""
    quantiles = np.quantile(first, np.arange(1, MAX_BLOCKS) / MAX_BLOCKS, method="lower")
    points = np.unique(np.concatenate([[0], quantiles, [n_inputs]]).astype(np.intp))
    points = points[points <= n_inputs]
    share = np.searchsorted(np.sort(first), points, side="left") / max(len(first), 1)  # F(point)
    best = np.full(len(points), np.inf)
    best[0] = 0.0
    came = np.zeros(len(points), np.intp)
    for e in range(1, len(points)):  # best[e]: blocks covering [0, points[e]) at least cost
        cost = best[:e] + overhead + share[e] * (points[e] - points[:e] + row_columns)
        came[e] = int(np.argmin(cost))
        best[e] = cost[came[e]]
    cuts, e = [], len(points) - 1
    while e:
        e = came[e]
        cuts.append(int(points[e]))
    dense = overhead + n_inputs + row_columns
    return np.array(cuts[::-1], np.intp), float((dense - best[-1]) / dense)


def _expected_skip(first: np.ndarray, cuts: np.ndarray, n_inputs: int) -> float:
    """The share of the first layer's products over ``n_inputs`` inputs that blocks starting
    at ``cuts`` skip, for rows whose first nonzero inputs are like ``first`` (a sample):
    block j meets the rows whose first nonzero input comes before its end."""
    ends = np.append(cuts[1:], n_inputs)
    meets = np.add.reduce(first[:, None] < ends, axis=0) / max(len(first), 1)
    return float(1.0 - (meets * np.diff(np.append(cuts, n_inputs))).sum() / n_inputs)
