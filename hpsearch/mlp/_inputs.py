"""Checks of the arrays handed to ``train``: shapes, finiteness, labels."""

from __future__ import annotations

import math

import numpy as np

from hpsearch.errors import DataError

CONSTANT_SAMPLE_ROWS = 256  # rows that rule out most varying columns before the full check
CHECK_ROWS = 256  # rows per chunk of the one pass that finds constant columns and checks finiteness


def _all_finite(x: np.ndarray) -> bool:
    # one fast pass: the sum of squares is finite unless some value is not (or it
    # overflows on huge values: then look element by element)
    if math.isfinite(float(np.vdot(x, x))):
        return True
    return bool(np.isfinite(x).all())


def check_xy(x, y, name: str, dtype, constants: bool = False):
    """``(x, y)`` as arrays of ``dtype`` and int labels, or a :class:`DataError`. With
    ``constants``, also ``(constant, values)``: which columns hold one value in every
    row, and the first row (so ``values[constant]`` are those values)."""
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 2:
        raise DataError(f"x_{name} must be a 2-D array (samples, features), got shape {x.shape}")
    if not constants or not len(x):
        if not _all_finite(x):
            _not_finite(x, name)
        if not constants:
            return x, _check_y(x, y, name)
        return x, _check_y(x, y, name), np.zeros(x.shape[1], bool), np.zeros(x.shape[1], x.dtype)
    values = x[0].copy()
    # the columns that hold the first row's value in a sample of rows, then in every row
    sample = x[:: max(1, len(x) // CONSTANT_SAMPLE_ROWS)]
    candidates = np.flatnonzero(np.logical_and.reduce(sample == values, axis=0))
    if 8 * len(candidates) > x.shape[1]:  # many: one pass over all columns beats a gather
        constant, finite = _constant_columns(x, values)
    else:
        finite = _all_finite(x)
        constant = np.zeros(x.shape[1], bool)
        if finite:
            constant[candidates] = np.logical_and.reduce(
                x.take(candidates, axis=1, mode="clip") == values[candidates], axis=0
            )
    if not finite:
        _not_finite(x, name)
    return x, _check_y(x, y, name), constant, values


def _constant_columns(x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(columns equal to values in every row, whether every value is finite)`` in one pass
    over ``x``, chunk by chunk (each chunk compared, then its sum of squares taken while
    it is still in the cache; see :func:`_all_finite`)."""
    constant = np.ones(x.shape[1], bool)
    same = np.empty((CHECK_ROWS, x.shape[1]), bool)
    chunk_constant = np.empty(x.shape[1], bool)
    finite = True
    for start in range(0, len(x), CHECK_ROWS):
        chunk = x[start : start + CHECK_ROWS]
        np.equal(chunk, values, out=same[: len(chunk)])
        np.logical_and.reduce(same[: len(chunk)], axis=0, out=chunk_constant)
        constant &= chunk_constant
        finite = finite and _all_finite(chunk)
    return constant, finite


def _not_finite(x, name):
    raise DataError(f"x_{name} must be finite, got NaN or inf in {np.count_nonzero(~np.isfinite(x))} values")


def _check_y(x, y, name):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"y_{name} must be 1-D with one label per row of x_{name} ({len(x)}), got shape {y.shape}")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        whole = np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all()
        if not whole:  # 3.0 is a label, 0.5 or nan is not
            raise DataError(f"y_{name} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.intp)
    if len(y) and y.min() < 0:
        raise DataError(f"y_{name} labels must be >= 0, got {int(y.min())}")
    return y
