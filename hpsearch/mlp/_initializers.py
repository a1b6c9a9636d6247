"""Weight and bias initializers: ``init(rng, fan_in, fan_out, config, dtype) -> array``.

Weights have shape ``(fan_in, fan_out)``; biases shape ``(fan_out,)``. Every draw
comes from the generator passed in.
"""

from __future__ import annotations

import math

import numpy as np


def _normal(rng, std, shape, dtype, mean=0.0):
    draws = rng.standard_normal(shape)  # float64; in place, the same operations as draws * std + mean
    draws *= std
    draws += mean
    return draws.astype(dtype, copy=False)


def _uniform(rng, limit, shape, dtype):
    return rng.uniform(-limit, limit, shape).astype(dtype)


def lecun_normal(rng, fan_in, fan_out, config, dtype):
    return _normal(rng, math.sqrt(1.0 / fan_in), (fan_in, fan_out), dtype)


def lecun_uniform(rng, fan_in, fan_out, config, dtype):
    return _uniform(rng, math.sqrt(3.0 / fan_in), (fan_in, fan_out), dtype)


def glorot_normal(rng, fan_in, fan_out, config, dtype):
    return _normal(rng, math.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out), dtype)


def glorot_uniform(rng, fan_in, fan_out, config, dtype):
    return _uniform(rng, math.sqrt(6.0 / (fan_in + fan_out)), (fan_in, fan_out), dtype)


def he_normal(rng, fan_in, fan_out, config, dtype):
    return _normal(rng, math.sqrt(2.0 / fan_in), (fan_in, fan_out), dtype)


def he_uniform(rng, fan_in, fan_out, config, dtype):
    return _uniform(rng, math.sqrt(6.0 / fan_in), (fan_in, fan_out), dtype)


def normal(rng, fan_in, fan_out, config, dtype):
    return _normal(rng, config.init_std, (fan_in, fan_out), dtype, config.init_mean)


def uniform(rng, fan_in, fan_out, config, dtype):
    return rng.uniform(config.init_low, config.init_high, (fan_in, fan_out)).astype(dtype)


def zeros(rng, fan_in, fan_out, config, dtype):
    return np.zeros((fan_in, fan_out), dtype)


def ones(rng, fan_in, fan_out, config, dtype):
    return np.ones((fan_in, fan_out), dtype)


def bias_zeros(rng, fan_in, fan_out, config, dtype):
    return np.zeros(fan_out, dtype)


def bias_ones(rng, fan_in, fan_out, config, dtype):
    return np.ones(fan_out, dtype)


def bias_normal(rng, fan_in, fan_out, config, dtype):
    return _normal(rng, config.bias_std, fan_out, dtype, config.bias_mean)


def bias_uniform(rng, fan_in, fan_out, config, dtype):
    return rng.uniform(config.bias_low, config.bias_high, fan_out).astype(dtype)


INITIALIZERS = {
    f.__name__: f
    for f in (
        lecun_normal,
        lecun_uniform,
        glorot_normal,
        glorot_uniform,
        he_normal,
        he_uniform,
        normal,
        uniform,
        zeros,
        ones,
    )
}

BIAS_INITIALIZERS = {
    "zeros": bias_zeros,
    "ones": bias_ones,
    "normal": bias_normal,
    "uniform": bias_uniform,
}

# initializers that give every unit of a layer the same weights: symmetry is never broken
SYMMETRIC = frozenset({"zeros", "ones"})
