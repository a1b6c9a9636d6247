"""MLPConfig validation and the registries: names users write, errors they read."""

import dataclasses
import json
import re

import pytest

from hpsearch.errors import HPSearchError
from hpsearch.mlp import (
    ACTIVATIONS,
    BIAS_INITIALIZERS,
    CONSTRAINTS,
    DTYPES,
    INITIALIZERS,
    LOSSES,
    OPTIMIZERS,
    ORDERED_PAIRS,
    MLPConfig,
)


def test_registry_keys_are_the_names_users_write():
    assert set(ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "identity", "softplus", "softsign", "step"}
    assert set(INITIALIZERS) == {
        "lecun_normal",
        "lecun_uniform",
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "normal",
        "uniform",
        "zeros",
        "ones",
    }
    assert set(BIAS_INITIALIZERS) == {"zeros", "ones", "normal", "uniform"}
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adagrad", "rmsprop", "adam"}
    assert set(LOSSES) == {"cross_entropy", "mean_squared_error"}


def test_defaults_are_valid_and_hidden_is_stored_as_a_tuple():
    assert MLPConfig().hidden == (100, 50)
    config = MLPConfig.from_dict({"hidden": [93, 42], "lr": 1, "activation": "leaky_relu"})
    assert config.hidden == (93, 42)
    assert isinstance(config.lr, float)
    assert MLPConfig.from_dict(config.to_dict()) == config


def test_every_field_survives_a_json_round_trip_through_to_dict():
    # a saved model stores its config as JSON: every field, none at its default
    config = MLPConfig(
        hidden=(7, 5, 3),
        activation="leaky_relu",
        alpha=0.13,
        loss="mean_squared_error",
        weight_init="uniform",
        init_mean=0.5,
        init_std=0.2,
        init_low=-0.3,
        init_high=0.4,
        bias_init="normal",
        bias_mean=0.1,
        bias_std=0.3,
        bias_low=-0.2,
        bias_high=0.25,
        optimizer="adam",
        lr=0.003,
        momentum=0.8,
        rho=0.95,
        beta1=0.85,
        beta2=0.99,
        eps=1e-7,
        weight_decay=1e-4,
        dropout=0.25,
        batch_norm=True,
        bn_momentum=0.8,
        batch_size=33,
        epochs=7,
        patience=3,
        dtype="float64",
        seed=11,
    )
    defaults = MLPConfig()
    assert all(getattr(config, f.name) != getattr(defaults, f.name) for f in dataclasses.fields(MLPConfig))
    d = config.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(MLPConfig)} and d["hidden"] == [7, 5, 3]
    back = MLPConfig.from_dict(json.loads(json.dumps(d)))
    assert back == config and back.hidden == (7, 5, 3)


def test_every_field_has_exactly_one_constraint_and_constraints_is_the_table():
    assert list(CONSTRAINTS) == [f.name for f in dataclasses.fields(MLPConfig)]
    assert MLPConfig.constraints() is CONSTRAINTS
    for field, constraint in CONSTRAINTS.items():
        assert constraint.kind in ("int", "float", "bool", "name"), field
        assert constraint.problem(getattr(MLPConfig(), field if field != "hidden" else "batch_size")) is None
    for low, high in ORDERED_PAIRS:
        assert CONSTRAINTS[low].kind == CONSTRAINTS[high].kind == "float"


@pytest.mark.parametrize(
    "field, description",
    [
        ("lr", "a finite number > 0"),
        ("dropout", "a finite number in [0, 1)"),
        ("alpha", "a finite number >= 0"),
        ("init_mean", "a finite number"),
        ("batch_size", "an integer >= 1"),
        ("hidden", "an integer >= 1"),
        ("seed", "an integer >= 0"),
        ("batch_norm", "true or false"),
        ("dtype", "one of " + ", ".join(DTYPES)),
        ("optimizer", "one of " + ", ".join(sorted(OPTIMIZERS))),
    ],
)
def test_a_constraint_describes_itself(field, description):
    assert CONSTRAINTS[field].describe() == description


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("lr", 0, "must be > 0, got 0"),
        ("lr", "x", "must be a number, got 'x'"),
        ("lr", True, "must be a number, got True"),
        ("momentum", 1, "must be in [0, 1), got 1"),
        ("epochs", 2.0, "must be an integer, got 2.0"),
        ("batch_norm", 2, "must be true or false, got 2"),
        ("dtype", "float16", "must be one of float32, float64, got 'float16'"),
        ("activation", "relux", "unknown activation 'relux'"),
    ],
)
def test_a_constraint_names_the_rule_and_the_value(field, value, problem):
    assert CONSTRAINTS[field].problem(value).startswith(problem)


@pytest.mark.parametrize("field", [f for f, c in CONSTRAINTS.items() if c.kind == "name"])
def test_a_name_constraint_lists_exactly_its_registry(field):
    registry = {
        "activation": ACTIVATIONS,
        "loss": LOSSES,
        "weight_init": INITIALIZERS,
        "bias_init": BIAS_INITIALIZERS,
        "optimizer": OPTIMIZERS,
        "dtype": DTYPES,
    }[field]
    assert CONSTRAINTS[field].names() == tuple(sorted(registry))
    for name in registry:
        assert CONSTRAINTS[field].problem(name) is None


def test_unknown_key_suggests_the_closest_name():
    with pytest.raises(HPSearchError, match=r"^unknown MLP parameter 'activaton'; did you mean 'activation'\?$"):
        MLPConfig.from_dict({"activaton": "relu"})


@pytest.mark.parametrize(
    "field, family, registry",
    [
        ("activation", "activation", ACTIVATIONS),
        ("loss", "loss", LOSSES),
        ("weight_init", "weight initializer", INITIALIZERS),
        ("bias_init", "bias initializer", BIAS_INITIALIZERS),
        ("optimizer", "optimizer", OPTIMIZERS),
    ],
)
def test_unknown_registry_name_lists_the_allowed_names(field, family, registry):
    allowed = ", ".join(sorted(registry))
    with pytest.raises(HPSearchError, match=re.escape(f"unknown {family} 'bogus' (allowed: {allowed})")):
        MLPConfig.from_dict({field: "bogus"})


def test_unknown_registry_name_close_to_a_real_one_gets_a_suggestion():
    with pytest.raises(HPSearchError, match=r"did you mean 'leaky_relu'\?"):
        MLPConfig(activation="leaky_rel")


@pytest.mark.parametrize(
    "changes, message",
    [
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
    ],
)
def test_range_checks_name_the_parameter_the_rule_and_the_value(changes, message):
    with pytest.raises(HPSearchError, match=re.escape(message)):
        MLPConfig.from_dict(changes)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MLPConfig().lr = 1.0
