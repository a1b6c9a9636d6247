"""The search-space DSL: parsing, validation messages, sampling through Optuna, writing back."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import optuna
import pytest
from optuna.trial import FixedTrial

import hpsearch.data
import hpsearch.mlp
from hpsearch.errors import HPSearchError, SpaceError
from hpsearch.space import Space, StudySettings, load_space, parse_space

SPACES = Path(__file__).parent / "spaces"
GOOD_FILES = sorted(SPACES.glob("*.toml"))

CLASSIC = """
[params]
hidden     = [ { int = [10, 99] }, { int = [10, 99] } ]
lr         = { log_uniform = [0.005, 0.5] }
batch_size = { int = [10, 90], step = 10 }
activation = { choice = ["relu", "leaky_relu"] }
alpha      = { uniform = [0.0, 0.4], when = { activation = "leaky_relu" } }
optimizer  = "sgd"
"""

VARIABLE = """
[params]
hidden = { layers = { int = [1, 4] }, nodes = { log_int = [16, 256] } }
lr     = 0.1
"""


@pytest.fixture(autouse=True, scope="module")
def quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


def random_trials(space: Space, n: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        yield trial, space.suggest(trial)


# --------------------------------------------------------------------------- bad input, one rule each

S = "[study]\n"
P = "[params]\n"
ACT = 'activation = { choice = ["relu", "leaky_relu"] }\n'

BAD = [
    # file and sections
    ("[params\nlr = 0.1\n", "malformed TOML: "),
    (P + "lr = \n", "(at line 2, column 6)"),
    ("[parms]\nlr = 0.1\n", "parms: unknown section (expected [study] and [params]); did you mean 'params'?"),
    ("params = 3\n", "params: must be a table ([params]), got 3"),
    # [study]
    (S + "validaton = 0.2\n", "study.validaton: unknown key; did you mean 'validation'?"),
    (S + 'epochs = "20"\n', "study.epochs: must be an integer, got '20'"),
    (S + "epochs = 0\n", "study.epochs: must be >= 1, got 0"),
    (S + "trials = 0\n", "study.trials: must be >= 1, got 0"),
    (S + "trials = 1.5\n", "study.trials: must be an integer, got 1.5"),
    (S + "validation = 1.0\n", "study.validation: must be in (0, 1), got 1.0"),
    (S + "validation = 0\n", "study.validation: must be in (0, 1), got 0"),
    (
        S + 'metric = "val_acc"\n',
        "study.metric: unknown metric 'val_acc' (allowed: val_accuracy, val_loss); did you mean 'val_accuracy'?",
    ),
    (S + 'sampler = "grid"\n', "study.sampler: unknown sampler 'grid' (allowed: qmc, random, tpe)"),
    (
        S + 'pruner = "medain"\n',
        "study.pruner: unknown pruner 'medain' (allowed: hyperband, median, none); did you mean 'median'?",
    ),
    (
        S + 'name = "../x"\n',
        "study.name: names the results directory, so it takes letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, at most 100 characters; got '../x'",
    ),
    (S + "name = 5\n", "study.name: must be a non-empty string, got 5"),
    (S + "seed = -1\n", "study.seed: must be in [0, 4294967295], got -1"),
    # unknown names and wrong types
    (P + 'activaton = "relu"\n', "params.activaton: unknown parameter; did you mean 'activation'?"),
    (P + 'lr = "fast"\n', "params.lr: must be a number, got 'fast'"),
    (P + "lr = 0\n", "params.lr: must be > 0, got 0"),
    (P + "lr = nan\n", "params.lr: must be a finite number, got nan"),
    (P + "batch_size = 0\n", "params.batch_size: must be >= 1, got 0"),
    (P + "batch_size = 32.0\n", "params.batch_size: must be an integer, got 32.0"),
    (P + "dropout = 1.0\n", "params.dropout: must be in [0, 1), got 1.0"),
    (P + "dropout = -0.1\n", "params.dropout: must be in [0, 1), got -0.1"),
    (P + "batch_norm = 1\n", "params.batch_norm: must be true or false, got 1"),
    (
        P + 'activation = ["relu", "tanh"]\n',
        "params.activation: a list is not a value for activation; a choice is written { choice = [...] }",
    ),
    # registry names, plain and inside a choice
    (
        P + 'activation = "relux"\n',
        "params.activation: unknown activation 'relux' (allowed: identity, "
        "leaky_relu, relu, sigmoid, softplus, softsign, step, tanh); did you mean 'relu'?",
    ),
    (P + 'activation = { choice = ["relu", "tanhh"] }\n', "params.activation.choice[1]: unknown activation 'tanhh'"),
    (P + 'weight_init = "he_norml"\n', "params.weight_init: unknown weight initializer 'he_norml'"),
    (P + 'bias_init = "he_normal"\n', "params.bias_init: unknown bias initializer 'he_normal'"),
    (P + 'optimizer = { choice = ["sgd", "adamw"] }\n', "params.optimizer.choice[1]: unknown optimizer 'adamw'"),
    (
        P + 'normalizer = "minmax"\n',
        "params.normalizer: unknown normalizer 'minmax' (allowed: min_max, none, z_score); did you mean 'min_max'?",
    ),
    (P + 'norm_axis = "feature"\n', "params.norm_axis: unknown norm_axis 'feature'"),
    (P + 'loss = "mse"\n', "params.loss: unknown loss 'mse'"),
    (P + 'dtype = "float16"\n', "params.dtype: unknown dtype 'float16' (allowed: float32, float64)"),
    # distributions
    (P + "lr = { log_uniform = [0.0, 0.5] }\n", "params.lr: log_uniform needs 0 < low < high, got [0.0, 0.5]"),
    (P + "lr = { log_uniform = [0.5, 0.05] }\n", "params.lr: log_uniform needs 0 < low < high, got [0.5, 0.05]"),
    (P + "alpha = { uniform = [0.4, 0.1] }\n", "params.alpha: uniform needs low < high, got [0.4, 0.1]"),
    (P + "alpha = { uniform = [0.2, 0.2] }\n", "params.alpha: uniform needs low < high, got [0.2, 0.2]"),
    (P + "alpha = { uniform = [0.1] }\n", "params.alpha: uniform needs [low, high], got [0.1]"),
    (P + 'alpha = { uniform = [0, "x"] }\n', "params.alpha: uniform bounds must be numbers, got [0, 'x']"),
    (P + "lr = { uniform = [0.0, 0.5] }\n", "params.lr: must be > 0, got low 0.0"),
    (P + "dropout = { uniform = [0, 1] }\n", "params.dropout: must be in [0, 1), got high 1"),
    (P + "batch_size = { int = [10.5, 90] }\n", "params.batch_size: int bounds must be integers, got [10.5, 90]"),
    (
        P + "batch_size = { int = [10, 90], step = 7 }\n",
        "params.batch_size.step: step 7 does not divide high - low = 80 (int = [10, 90])",
    ),
    (
        P + "batch_size = { int = [10, 90], step = 0 }\n",
        "params.batch_size.step: step must be a positive integer, got 0",
    ),
    (P + "batch_size = { int = [0, 90] }\n", "params.batch_size: must be >= 1, got low 0"),
    (
        P + "batch_size = { log_int = [16, 256], step = 2 }\n",
        "params.batch_size.step: step goes only with int, not with log_int",
    ),
    (P + "lr = { uniform = [0.1, 0.5], step = 0.1 }\n", "params.lr.step: step goes only with int, not with uniform"),
    (
        P + "lr = { log_unifrom = [0.005, 0.5] }\n",
        "params.lr.log_unifrom: unknown distribution keyword; did you mean 'log_uniform'?",
    ),
    (
        P + "lr = { uniform = [0.1, 0.5], log_uniform = [0.1, 0.5] }\n",
        "params.lr: one distribution per parameter, got both uniform and log_uniform",
    ),
    (
        P + "lr = { step = 2 }\n",
        "params.lr: a distribution needs one of uniform, log_uniform, int, log_int, choice; got keys ['step']",
    ),
    (
        P + "batch_size = { uniform = [10, 90] }\n",
        "params.batch_size: batch_size takes an integer; use int, log_int or choice, not uniform",
    ),
    (P + "lr = { int = [1, 3] }\n", "params.lr: lr takes a float; use uniform, log_uniform or choice, not int"),
    (
        P + "activation = { uniform = [0, 1] }\n",
        "params.activation: activation takes a name; use choice = [...], not uniform",
    ),
    (P + "activation = { choice = [] }\n", "params.activation.choice: choice needs at least one option, got []"),
    (P + 'activation = { choice = ["relu", "relu"] }\n', "params.activation.choice[1]: choice lists 'relu' twice"),
    # conditions
    (
        P + ACT + 'alpha = { uniform = [0, 0.4], when = { activaton = "leaky_relu" } }\n',
        "params.alpha.when.activaton: unknown parameter; did you mean 'activation'?",
    ),
    (
        P + "alpha = { uniform = [0, 0.4], when = { alpha = 0.1 } }\n",
        "params.alpha.when.alpha: a parameter cannot depend on itself",
    ),
    (
        P + 'optimizer = { choice = ["sgd", "momentum"], when = { batch_size = 10 } }\n'
        'batch_size = { int = [10, 20], when = { optimizer = "sgd" } }\n',
        "params.optimizer.when: conditions form a cycle: optimizer → batch_size → optimizer",
    ),
    (
        P + 'activation = "relu"\nalpha = { uniform = [0, 0.4], when = { activation = "leaky_relu" } }\n',
        "params.alpha.when.activation: can never hold: activation is always 'relu', never 'leaky_relu'",
    ),
    (
        P + ACT + 'alpha = { uniform = [0, 0.4], when = { activation = ["tanh", "sigmoid"] } }\n',
        "params.alpha.when.activation: can never hold: activation is choice {relu, leaky_relu}, "
        "never 'tanh' or 'sigmoid'",
    ),
    (
        P + ACT + 'alpha = { uniform = [0, 0.4], when = { activation = "leaky_relus" } }\n',
        "params.alpha.when.activation: unknown activation 'leaky_relus'",
    ),
    (
        P + 'momentum = { uniform = [0.5, 0.9], when = { optimizer = "momentum" } }\n',
        "params.momentum.when.optimizer: names optimizer, which is not set in [params]",
    ),
    (
        P + "lr = { log_uniform = [0.01, 0.1] }\nalpha = { uniform = [0, 0.4], when = { lr = 0.1 } }\n",
        "params.alpha.when.lr: a condition needs a parameter with countable values",
    ),
    (
        P
        + "batch_size = { int = [10, 90], step = 10 }\n"
        + "lr = { log_uniform = [0.01, 0.1], when = { batch_size = 15 } }\n",
        "params.lr.when.batch_size: can never hold: batch_size is int 10–90 step 10, never 15",
    ),
    (P + "alpha = { uniform = [0, 0.4], when = {} }\n", "params.alpha.when: when needs a table like"),
    (
        P + "init_low = 0.1\n",
        "params.init_low: needs init_low < init_high, got init_low = 0.1 and init_high = 0.05 (the default)",
    ),
    # hidden
    (P + "hidden = []\n", "params.hidden: needs at least one hidden layer, got []"),
    (P + "hidden = [64, 0]\n", "params.hidden[1]: needs >= 1 nodes, got 0"),
    (P + "hidden = [64, 32.5]\n", "params.hidden[1]: takes an integer or an int, log_int or choice table, got 32.5"),
    (P + "hidden = [{ int = [0, 10] }]\n", "params.hidden[0]: must be >= 1, got low 0"),
    (P + "hidden = [{ log_int = [0, 10] }]\n", "params.hidden[0]: log_int needs 0 < low < high, got [0, 10]"),
    (
        P + 'hidden = [{ int = [8, 64], when = { activation = "relu" } }]\n',
        "params.hidden[0].when: a condition is not allowed here",
    ),
    (P + "hidden = 64\n", "params.hidden: takes a list with one entry per layer, or { layers = ..., nodes = ... }"),
    (P + "hidden = { int = [1, 3] }\n", "params.hidden: takes a list with one entry per layer"),
    (P + "hidden = { layers = 0, nodes = 64 }\n", "params.hidden.layers: needs >= 1 layers, got 0"),
    (
        P + "hidden = { layers = 2 }\n",
        "params.hidden: a variable-depth hidden needs both layers and nodes, nodes is missing",
    ),
    (
        P + "hidden = { layers = 2, node = 64 }\n",
        "params.hidden.node: unknown key (expected layers and nodes); did you mean 'nodes'?",
    ),
    (
        P + ACT + "alpha = { uniform = [0, 0.4], when = { hidden = 2 } }\n",
        "params.alpha.when.hidden: a condition cannot name hidden",
    ),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:60] for _, m in BAD])
def test_a_bad_file_gets_one_line_naming_key_rule_and_value(text, message):
    with pytest.raises(SpaceError, match=re.escape(message)) as info:
        parse_space(text)
    assert "\n" not in str(info.value)


def test_an_error_message_starts_with_the_key_path():
    with pytest.raises(SpaceError) as info:
        parse_space(P + "lr = { log_uniform = [0.0, 0.5] }\n")
    assert info.value.path == "params.lr"
    assert str(info.value) == "params.lr: log_uniform needs 0 < low < high, got [0.0, 0.5]"


def test_load_space_prefixes_every_error_with_the_file(tmp_path):
    bad = tmp_path / "space.toml"
    bad.write_text(P + "lr = { log_uniform = [0.0, 0.5] }\n")
    with pytest.raises(SpaceError) as info:
        load_space(bad)
    assert str(info.value) == f"{bad}: params.lr: log_uniform needs 0 < low < high, got [0.0, 0.5]"
    assert info.value.path == "params.lr"


def test_malformed_toml_reports_the_parsers_line_and_column(tmp_path):
    bad = tmp_path / "space.toml"
    bad.write_text('[study]\nname = "x"\nepochs = = 3\n')
    with pytest.raises(SpaceError, match=re.escape(f"{bad}: malformed TOML: ") + r".*line 3, column \d+"):
        load_space(bad)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.toml", "missing.toml: no such file"),
        (lambda d: d, "is a directory, not a space file"),
        (
            lambda d: (d / "latin1.toml").write_bytes(b'[study]\nname = "caf\xe9"\n') and d / "latin1.toml",
            "latin1.toml: not UTF-8 text",
        ),
    ],
)
def test_file_problems_are_one_line_errors_naming_the_file(tmp_path, make, message):
    with pytest.raises(HPSearchError, match=re.escape(message)):
        load_space(make(tmp_path))


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("path", GOOD_FILES, ids=[p.stem for p in GOOD_FILES])
def test_good_files_parse_and_keep_their_exact_text(path):
    space = load_space(path)
    assert space.text == path.read_text()
    assert space.source == str(path)
    assert space.param_names()


def test_the_study_name_defaults_to_the_file_stem_and_settings_to_their_defaults():
    space = load_space(SPACES / "conditional_chain.toml")
    assert space.study == StudySettings(name="conditional_chain")
    assert parse_space(CLASSIC).study.name == "study"


def test_study_settings_are_read_and_the_metric_sets_the_direction():
    space = load_space(SPACES / "variable_depth.toml")
    assert (space.study.metric, space.study.sampler, space.study.pruner) == ("val_loss", "tpe", "median")
    assert space.study.direction == "minimize"
    assert load_space(SPACES / "leaky_relu_random.toml").study.direction == "maximize"


def test_an_empty_file_is_a_space_of_defaults():
    space = parse_space("")
    assert space.param_names() == [] and space.constants() == {}
    assert space.suggest(FixedTrial({})) == {}
    assert space.describe() == "no searched parameters (every value is constant)"


@pytest.mark.parametrize(
    "param, registry",
    [
        ("activation", hpsearch.mlp.ACTIVATIONS),
        ("loss", hpsearch.mlp.LOSSES),
        ("weight_init", hpsearch.mlp.INITIALIZERS),
        ("bias_init", hpsearch.mlp.BIAS_INITIALIZERS),
        ("optimizer", hpsearch.mlp.OPTIMIZERS),
        ("normalizer", hpsearch.data.NORMALIZERS),
        ("norm_axis", hpsearch.data.NORM_AXES),
    ],
)
def test_every_registry_key_is_a_name_the_file_can_use(param, registry):
    names = list(registry)
    choice = ", ".join(f'"{n}"' for n in names)
    space = parse_space(f"[params]\n{param} = {{ choice = [{choice}] }}\n")
    assert space.distributions()[param].choices == tuple(names)
    for name in names:
        assert parse_space(f'[params]\n{param} = "{name}"\n').constants() == {param: name}


def test_every_mlp_config_field_is_a_parameter_name():
    names = [f for f in hpsearch.mlp.MLPConfig.__dataclass_fields__ if f != "hidden"]
    for name in names:
        with pytest.raises(SpaceError) as info:
            parse_space(f"[params]\n{name} = {{ bogus = 1 }}\n")
        assert "unknown distribution keyword" in str(info.value), name


@pytest.mark.parametrize(
    "name, value",
    [
        (name, value)
        for name, values in {
            "lr": [0, 1e-9],
            "alpha": [-0.01, 0],
            "init_std": [-0.01, 0],
            "bias_std": [-0.01, 0],
            "eps": [0, 1e-12],
            "weight_decay": [-1e-3, 0],
            "momentum": [-0.1, 0, 0.99, 1],
            "rho": [0.999, 1],
            "beta1": [-0.1, 0.9, 1],
            "beta2": [0.999, 1],
            "dropout": [0, 0.5, 1],
            "bn_momentum": [0.9, 1],
            "batch_size": [0, 1],
            "epochs": [0, 1],
            "seed": [-1, 0],
        }.items()
        for value in values
    ],
)
def test_value_rules_agree_with_mlp_config(name, value):
    """MLPConfig is the oracle: the file accepts exactly the values the MLP accepts."""
    try:
        hpsearch.mlp.MLPConfig(**{name: value})
        mlp_ok = True
    except HPSearchError:
        mlp_ok = False
    try:
        parse_space(f"[params]\n{name} = {value!r}\n")
        space_ok = True
    except SpaceError:
        space_ok = False
    assert space_ok == mlp_ok


# --------------------------------------------------------------------------- suggest


def test_suggest_with_a_fixed_trial_gives_a_flat_config_with_constants():
    space = parse_space(CLASSIC)
    params = {"hidden_1": 93, "hidden_2": 42, "lr": 0.3, "batch_size": 60, "activation": "leaky_relu", "alpha": 0.125}
    config = space.suggest(FixedTrial(params))
    assert config == {
        "hidden": (93, 42),
        "lr": 0.3,
        "batch_size": 60,
        "activation": "leaky_relu",
        "alpha": 0.125,
        "optimizer": "sgd",
    }
    assert type(config["hidden"][0]) is int and type(config["lr"]) is float


def test_a_conditional_parameter_appears_only_when_its_condition_holds():
    space = parse_space(CLASSIC)
    base = {"hidden_1": 10, "hidden_2": 10, "lr": 0.01, "batch_size": 10}
    assert "alpha" not in space.suggest(FixedTrial({**base, "activation": "relu"}))
    assert space.suggest(FixedTrial({**base, "activation": "leaky_relu", "alpha": 0.2}))["alpha"] == 0.2
    seen = set()
    for trial, config in random_trials(space, 60):
        assert ("alpha" in config) == (config["activation"] == "leaky_relu") == ("alpha" in trial.params)
        seen.add(config["activation"])
    assert seen == {"relu", "leaky_relu"}


def test_a_condition_on_a_parameter_that_was_not_suggested_is_false():
    space = load_space(SPACES / "conditional_chain.toml")
    config = space.suggest(FixedTrial({"activation": "tanh", "hidden_2": 16, "seed": 1}))
    assert config == {"activation": "tanh", "hidden": (64, 16), "seed": 1}  # no weight_init, so no init_std
    config = space.suggest(
        FixedTrial({"activation": "relu", "weight_init": "normal", "init_std": 0.01, "hidden_2": 8, "seed": 0})
    )
    assert config["init_std"] == 0.01 and "alpha" not in config


def test_parameters_are_suggested_after_the_ones_their_condition_names():
    space = load_space(SPACES / "conditional_chain.toml")
    assert space.param_names() == ["activation", "alpha", "weight_init", "init_std", "hidden_2", "seed"]
    for trial, _config in random_trials(space, 40):
        assert list(trial.params) == [n for n in space.param_names() if n in trial.params]


def test_a_condition_with_a_list_holds_for_any_listed_value():
    space = load_space(SPACES / "conditional_chain.toml")
    for _trial, config in random_trials(space, 60, seed=3):
        assert ("weight_init" in config) == (config["activation"] in ("relu", "leaky_relu"))
        assert ("init_std" in config) == (config.get("weight_init") == "normal")


def test_suggest_through_a_real_study_respects_bounds_steps_and_log_scale():
    space = parse_space(CLASSIC)
    lrs = []
    for _, config in random_trials(space, 400):
        assert all(isinstance(n, int) and 10 <= n <= 99 for n in config["hidden"])
        assert 0.005 <= config["lr"] <= 0.5
        assert config["batch_size"] in range(10, 91, 10)
        assert 0.0 <= config.get("alpha", 0.0) <= 0.4
        lrs.append(config["lr"])
    # log-uniform: half the mass below the geometric mean sqrt(0.005 * 0.5) = 0.05 (uniform would put ~9 % there)
    below = sum(lr < 0.05 for lr in lrs) / len(lrs)
    assert 0.4 < below < 0.6


def test_a_variable_depth_hidden_suggests_n_layers_then_one_width_per_layer():
    space = parse_space(VARIABLE)
    assert space.param_names() == ["n_layers", "hidden_1", "hidden_2", "hidden_3", "hidden_4"]
    assert space.scale("n_layers") == "int" and space.scale("hidden_3") == "log_int"
    config = space.suggest(FixedTrial({"n_layers": 2, "hidden_1": 200, "hidden_2": 17}))
    assert config == {"hidden": (200, 17), "lr": 0.1}
    depths = set()
    for trial, config in random_trials(space, 60):
        n = trial.params["n_layers"]
        depths.add(n)
        assert len(config["hidden"]) == n
        assert sorted(k for k in trial.params if k.startswith("hidden_")) == [f"hidden_{k}" for k in range(1, n + 1)]
        assert all(16 <= w <= 256 for w in config["hidden"])
        assert space.flatten(config) == {
            "n_layers": n,
            **{f"hidden_{k}": w for k, w in enumerate(config["hidden"], 1)},
            "lr": 0.1,
        }
    assert depths == {1, 2, 3, 4}


def test_a_hidden_list_mixes_constant_and_searched_layers():
    space = load_space(SPACES / "conditional_chain.toml")
    assert space.constants() == {"hidden_1": 64}
    assert space.distributions()["hidden_2"] == optuna.distributions.IntDistribution(8, 32, step=8)
    assert parse_space("[params]\nhidden = [64, 32]\n").suggest(FixedTrial({})) == {"hidden": (64, 32)}


def test_sample_is_reproducible_from_its_seed():
    space = load_space(SPACES / "variable_depth.toml")
    first = space.sample(5, seed=1)
    assert first == space.sample(5, seed=1)
    assert first != space.sample(5, seed=2)
    assert len(first) == 5 and all("lr" in c and "hidden" in c for c in first)


def test_suggest_depends_only_on_what_the_trial_answers_for_each_name():
    space = load_space(SPACES / "leaky_relu_random.toml")
    ((trial, config),) = random_trials(space, 1)
    assert space.suggest(FixedTrial(trial.params)) == config


# --------------------------------------------------------------------------- describing the space


def test_describe_is_one_line_of_searched_parameters():
    space = load_space(SPACES / "leaky_relu_random.toml")
    assert space.describe() == (
        "hidden [int 10–99, int 10–99] · lr log-uniform 0.005–0.5 · batch_size int 10–90 step 10 · "
        "alpha uniform 0–0.4 (when activation = leaky_relu) · normalizer choice {min_max, z_score} · "
        "norm_axis choice {global, per_feature}"
    )
    assert parse_space(VARIABLE).describe() == "hidden layers int 1–4 × nodes log-int 16–256"
    assert (
        "weight_init choice {he_normal, normal} (when activation in {relu, leaky_relu})"
        in load_space(SPACES / "conditional_chain.toml").describe()
    )


def test_scales_constants_and_distributions_name_the_optuna_parameters():
    space = load_space(SPACES / "leaky_relu_random.toml")
    assert {n: space.scale(n) for n in space.param_names()} == {
        "hidden_1": "int",
        "hidden_2": "int",
        "lr": "log",
        "batch_size": "int",
        "alpha": "linear",
        "normalizer": "categorical",
        "norm_axis": "categorical",
    }
    assert space.constants() == {"activation": "leaky_relu", "weight_init": "he_normal", "optimizer": "sgd"}
    assert space.distributions()["lr"] == optuna.distributions.FloatDistribution(0.005, 0.5, log=True)
    assert space.max_value("batch_size") == 90 and space.max_value("optimizer") is None
    with pytest.raises(HPSearchError, match="activation is not a searched parameter"):
        space.scale("activation")
    with pytest.raises(HPSearchError, match="did you mean 'lr'"):
        space.scale("lrr")


# --------------------------------------------------------------------------- writing back


def same_space(a: Space, b: Space) -> bool:
    return (a.describe(), a.param_names(), a.constants(), a.study, a.distributions()) == (
        b.describe(),
        b.param_names(),
        b.constants(),
        b.study,
        b.distributions(),
    )


@pytest.mark.parametrize("path", GOOD_FILES, ids=[p.stem for p in GOOD_FILES])
def test_to_toml_round_trips(path):
    space = load_space(path)
    text = space.to_toml()
    again = parse_space(text)
    assert same_space(space, again)
    assert again.to_toml() == text


def test_to_toml_narrows_ranges_and_keeps_kind_step_and_condition():
    space = load_space(SPACES / "leaky_relu_random.toml")
    narrowed = parse_space(
        space.to_toml(
            lr=(0.05, 0.3),
            hidden_2=(20, 50),
            batch_size=(30, 60),
            alpha=(0.1, 0.2),
            normalizer=("z_score",),
            study={"name": "narrow"},
        )
    )
    assert narrowed.describe() == (
        "hidden [int 10–99, int 20–50] · lr log-uniform 0.05–0.3 · batch_size int 30–60 step 10 · "
        "alpha uniform 0.1–0.2 (when activation = leaky_relu) · normalizer choice {z_score} · "
        "norm_axis choice {global, per_feature}"
    )
    assert narrowed.study == StudySettings(name="narrow", epochs=50)


def test_to_toml_fixes_adds_and_removes_parameters():
    space = parse_space(CLASSIC)
    changed = parse_space(space.to_toml(lr=0.1, dropout={"uniform": [0.0, 0.5]}, optimizer=None))
    assert changed.constants() == {"lr": 0.1}
    assert "dropout uniform 0–0.5" in changed.describe() and "optimizer" not in changed.suggest(
        FixedTrial({"hidden_1": 10, "hidden_2": 10, "batch_size": 10, "activation": "relu", "dropout": 0.1})
    )
    deeper = parse_space(parse_space(VARIABLE).to_toml(n_layers=(2, 3), hidden_1=(32, 64)))
    assert deeper.describe() == "hidden layers int 2–3 × nodes log-int 32–64"


def test_to_toml_refuses_changes_that_break_a_rule():
    space = parse_space(CLASSIC)
    with pytest.raises(SpaceError, match=re.escape("params.batch_size.step: step 10 does not divide")):
        space.to_toml(batch_size=(10, 95))
    with pytest.raises(SpaceError, match="can never hold"):
        space.to_toml(activation=("relu",))
    with pytest.raises(HPSearchError, match="optimizer is not a distribution"):
        space.to_toml(optimizer=("sgd", "adam"))
    with pytest.raises(HPSearchError, match="did you mean 'alpha'"):
        space.to_toml(alpah=(0.0, 0.1))


def test_to_toml_writes_strings_and_floats_that_read_back_exactly():
    source = '[study]\ndataset = "csv:a \\"quoted\\" name\\u007f é"\n[params]\nlr = 1e-05\neps = 1.5e-08\n'
    text = parse_space(source).to_toml()
    data = tomllib.loads(text)
    assert data["study"]["dataset"] == 'csv:a "quoted" name\x7f é'
    assert data["params"] == {"lr": 1e-05, "eps": 1.5e-08}
    assert "lr  = 1e-05" in text
