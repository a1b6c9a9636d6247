"""MLPConfig validation and the registries: names users write, errors they read."""

import re

import pytest

from hpsearch.errors import HPSearchError
from hpsearch.mlp import (ACTIVATIONS, BIAS_INITIALIZERS, INITIALIZERS, LOSSES, OPTIMIZERS,
                          MLPConfig)


def test_registry_keys_are_the_names_users_write():
    assert set(ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "identity",
                                "softplus", "softsign", "step"}
    assert set(INITIALIZERS) == {"lecun_normal", "lecun_uniform", "glorot_normal", "glorot_uniform",
                                 "he_normal", "he_uniform", "normal", "uniform", "zeros", "ones"}
    assert set(BIAS_INITIALIZERS) == {"zeros", "ones", "normal", "uniform"}
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adagrad", "rmsprop", "adam"}
    assert set(LOSSES) == {"cross_entropy", "mean_squared_error"}


def test_defaults_are_valid_and_hidden_is_stored_as_a_tuple():
    assert MLPConfig().hidden == (100, 50)
    config = MLPConfig.from_dict({"hidden": [93, 42], "lr": 1, "activation": "leaky_relu"})
    assert config.hidden == (93, 42)
    assert isinstance(config.lr, float)
    assert MLPConfig.from_dict(config.to_dict()) == config


def test_unknown_key_suggests_the_closest_name():
    with pytest.raises(HPSearchError, match=r"^unknown MLP parameter 'activaton'; did you mean 'activation'\?$"):
        MLPConfig.from_dict({"activaton": "relu"})


@pytest.mark.parametrize("field, family, registry", [
    ("activation", "activation", ACTIVATIONS),
    ("loss", "loss", LOSSES),
    ("weight_init", "weight initializer", INITIALIZERS),
    ("bias_init", "bias initializer", BIAS_INITIALIZERS),
    ("optimizer", "optimizer", OPTIMIZERS),
])
def test_unknown_registry_name_lists_the_allowed_names(field, family, registry):
    allowed = ", ".join(sorted(registry))
    with pytest.raises(HPSearchError, match=re.escape(f"unknown {family} 'bogus' (allowed: {allowed})")):
        MLPConfig.from_dict({field: "bogus"})


def test_unknown_registry_name_close_to_a_real_one_gets_a_suggestion():
    with pytest.raises(HPSearchError, match=r"did you mean 'leaky_relu'\?"):
        MLPConfig(activation="leaky_rel")


@pytest.mark.parametrize("changes, message", [
    ({"lr": 0.0}, "'lr' must be > 0, got 0.0"),
    ({"lr": -0.1}, "'lr' must be > 0, got -0.1"),
    ({"lr": float("nan")}, "'lr' must be a finite number, got nan"),
    ({"dropout": 1.0}, "'dropout' must be in [0, 1), got 1.0"),
    ({"dropout": -0.5}, "'dropout' must be in [0, 1), got -0.5"),
    ({"batch_size": 0}, "'batch_size' must be >= 1, got 0"),
    ({"batch_size": 2.5}, "'batch_size' must be an integer, got 2.5"),
    ({"epochs": 0}, "'epochs' must be >= 1, got 0"),
    ({"hidden": [10, 0]}, "'hidden[1]' must be >= 1, got 0"),
    ({"hidden": []}, "'hidden' must have at least one layer, got ()"),
    ({"hidden": 10}, "'hidden' must be a list of layer widths, got 10"),
    ({"alpha": -0.1}, "'alpha' must be >= 0, got -0.1"),
    ({"momentum": 1.0}, "'momentum' must be in [0, 1), got 1.0"),
    ({"rho": 1.5}, "'rho' must be in [0, 1), got 1.5"),
    ({"beta2": 1.0}, "'beta2' must be in [0, 1), got 1.0"),
    ({"eps": 0.0}, "'eps' must be > 0, got 0.0"),
    ({"weight_decay": -1.0}, "'weight_decay' must be >= 0, got -1.0"),
    ({"init_std": -1.0}, "'init_std' must be >= 0, got -1.0"),
    ({"bn_momentum": 1.0}, "'bn_momentum' must be in [0, 1), got 1.0"),
    ({"seed": -1}, "'seed' must be >= 0, got -1"),
    ({"init_low": 0.1, "init_high": 0.1}, "'init_low' < 'init_high' required, got init_low=0.1, init_high=0.1"),
    ({"dtype": "float16"}, "'dtype' must be one of float32, float64, got 'float16'"),
    ({"lr": "0.1"}, "'lr' must be a number, got '0.1'"),
])
def test_range_checks_name_the_parameter_the_rule_and_the_value(changes, message):
    with pytest.raises(HPSearchError, match=re.escape(message)):
        MLPConfig.from_dict(changes)


def test_config_is_frozen():
    with pytest.raises(Exception):
        MLPConfig().lr = 1.0
