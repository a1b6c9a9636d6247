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
SAMPLE_ROWS = 1024  # training rows looked at to rank the inputs by how often they are nonzero
GROUP_ROWS = 16  # rows per group of a batch's first-layer products, at least (fewer: slower gemms)
MAX_GROUPS = 16


def row_groups(rows: int) -> int:
    """How many row groups a batch of ``rows`` rows is split into (see ``InputOrder``)."""
    return max(1, min(MAX_GROUPS, rows // GROUP_ROWS))


def _first_nonzero(x: np.ndarray) -> np.ndarray:
    """Per row, the column of its first nonzero value (0 for an all-zero row: it skips nothing)."""
    return (x != 0).argmax(axis=1)


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
    - Sparsest first: a row is 0 in every input before its first nonzero one. The rows
      of a batch are sorted by it (their order in a batch changes nothing but rounding,
      and which dropout mask each row draws) and split into a few groups
      (:func:`row_groups`), each taking its products from its first row's first nonzero
      input on. Evaluation sorts its rows the same way once.

    On MNIST at batch 100 the first layer's products then cover 56 % of the inputs
    (``python scripts/bench_core.py`` prints the plan). :meth:`plan` returns ``None``
    when the products saved over the run (in epochs' worth of first-layer products)
    are fewer than ``min_saving``, or when no input varies.
    """

    def __init__(self, order, train: ConstantInputs, evaluate: ConstantInputs, groups: int):
        self.order, self.train, self.evaluate, self.groups = order, train, evaluate, groups
        self.first = None  # per training row, its first nonzero input (when groups > 1)

    @classmethod
    def plan(cls, model: MLP, x, constant, values, x_val, batch: int, epochs: int,
             min_saving: float = REORDER_MIN_SAVING) -> "InputOrder | None":
        n_features = len(constant)
        varying = np.flatnonzero(~constant)
        k = len(varying)
        if not k:
            return None
        sample = x[::max(1, len(x) // max(SAMPLE_ROWS, 4 * batch))].take(varying, axis=1, mode="clip")
        # an input whose minimum is more common than 0 (z-scored pixels, say) is shifted by it
        minimum = values[varying]
        shift = np.add.reduce(sample == minimum, axis=0) > np.add.reduce(sample == 0, axis=0)
        offsets = np.where(shift, minimum, 0).astype(x.dtype)
        # rank the varying inputs by how often they are nonzero (once shifted), on the sample
        nonzero = sample != offsets
        ranked = np.argsort(np.add.reduce(nonzero, axis=0, dtype=np.intp), kind="stable")
        varying, offsets = varying[ranked], offsets[ranked]
        groups = row_groups(batch)
        skipped = 0.0
        if groups > 1:
            first = nonzero.take(ranked, axis=1, mode="clip").argmax(axis=1)
            skipped = _expected_skip(first, batch, groups, k)
        if (n_features - k + skipped * k) / n_features * epochs < min_saving:
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
        plan = cls(order, folded(k, offsets), folded(len(eval_offsets), eval_offsets), groups if skipped else 1)
        W1 = model.W[0]
        W1[...] = W1[order]
        return plan

    def training_inputs(self, x: np.ndarray) -> np.ndarray:
        """The training rows' varying inputs, in the new order, shifted (and ``first``)."""
        x = x.take(self.order[:self.train.active], axis=1, mode="clip")
        if self.train.offsets is not None:
            x -= self.train.offsets
        if self.groups > 1:
            self.first = _first_nonzero(x)
        return x

    def evaluation_set(self, x: np.ndarray, y: np.ndarray, rows: int):
        """``(x, y, starts)`` for :class:`_Evaluator`: the inputs in the new order, the rows
        sorted by their first nonzero input, and where each chunk of ``rows`` starts."""
        x = x.take(self.order[:self.evaluate.active], axis=1, mode="clip")
        if self.evaluate.offsets is not None:
            x -= self.evaluate.offsets
        first = _first_nonzero(x)
        by_first = np.argsort(first, kind="stable")
        return x.take(by_first, axis=0, mode="clip"), y[by_first], first[by_first[::rows]].tolist()

    def restore(self, model: MLP) -> None:
        W1 = model.W[0]
        W1[self.order] = W1.copy()


def _expected_skip(first: np.ndarray, batch: int, groups: int, n_inputs: int) -> float:
    """The share of a batch's first-layer products its row groups skip, estimated from
    the first nonzero input of a sample of rows, in batches of the sample."""
    k_rows = len(first) // batch * batch
    if not k_rows:
        return 0.0
    # a fixed shuffle of its own (the run's generators are not touched): the data may be sorted
    first = np.random.default_rng(0).permutation(first)
    sorted_batches = np.sort(first[:k_rows].reshape(-1, batch), axis=1)
    bounds = [i * batch // groups for i in range(groups + 1)]
    sizes = np.diff(bounds)
    skipped = (sorted_batches[:, bounds[:-1]] * sizes).sum() / (k_rows * n_inputs)
    return float(skipped)
