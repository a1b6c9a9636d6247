"""What a new user reads: hints by meaning and by case, warnings about parameters that do nothing, usage."""

from __future__ import annotations

import textwrap

import pytest

from hpsearch import cli
from hpsearch.errors import SpaceError
from hpsearch.space import parse_space


@pytest.mark.parametrize(
    "written, meant",
    [
        ("learning_rate", "lr"),
        ("eta", "lr"),
        ("LR", "lr"),
        ("batch", "batch_size"),
        ("nodes", "hidden"),
        ("layers", "hidden"),
        ("hidden_layer_sizes", "hidden"),
        ("activation_alpha", "alpha"),
        ("l2", "weight_decay"),
        ("weight_init_std", "init_std"),
        ("solver", "optimizer"),
        ("Learning-Rate", "lr"),
    ],
)
def test_an_unknown_parameter_suggests_the_name_it_means(written, meant):
    with pytest.raises(SpaceError, match=rf"^params\.{written}: unknown parameter; did you mean '{meant}'\?"):
        parse_space(f"[params]\n{written!r} = 1\n".replace("'", '"'))


@pytest.mark.parametrize(
    "key, value, meant",
    [
        ("activation", "ReLU", "relu"),
        ("optimizer", "SGD", "sgd"),
        ("normalizer", "Min-Max", "min_max"),
        ("weight_init", "He_Normal", "he_normal"),
    ],
)
def test_a_name_in_the_wrong_case_says_names_are_lower_case(key, value, meant):
    with pytest.raises(SpaceError, match=rf"did you mean '{meant}'\? \(names are lower case\)"):
        parse_space(f'[params]\n{key} = "{value}"\n')


def test_an_unknown_study_key_suggests_by_meaning():
    with pytest.raises(SpaceError, match=r"^study\.n_trials: unknown key; did you mean 'trials'\?"):
        parse_space("[study]\nn_trials = 5\n")


@pytest.mark.parametrize(
    "params, warned",
    [
        ('activation = "relu"\nalpha = { uniform = [0.0, 0.4] }', "alpha"),
        ("alpha = 0.2", "alpha"),  # relu is the default activation
        ('optimizer = "sgd"\nmomentum = { uniform = [0.5, 0.9] }', "momentum"),
        ('activation = { choice = ["relu", "tanh"] }\nalpha = 0.1', "alpha"),
        ('norm_axis = "per_feature"', "norm_axis"),
        ("batch_norm = false\nbn_momentum = 0.5", "bn_momentum"),
    ],
)
def test_a_parameter_that_can_never_matter_is_warned_about(params, warned):
    warnings = parse_space(f"[params]\n{params}\n").warnings()
    assert len(warnings) == 1 and warnings[0].startswith(f"params.{warned}: has no effect: it is used only when")


@pytest.mark.parametrize(
    "params",
    [
        'activation = "leaky_relu"\nalpha = { uniform = [0.0, 0.4] }',
        'activation = { choice = ["relu", "leaky_relu"] }\nalpha = 0.1',
        'activation = { choice = ["relu", "leaky_relu"] }\n'
        'alpha = { uniform = [0.0, 0.4], when = { activation = "leaky_relu" } }',
        'optimizer = "momentum"\nmomentum = 0.5',
        'normalizer = "z_score"\nnorm_axis = "per_feature"',
    ],
)
def test_a_parameter_that_can_matter_is_not_warned_about(params):
    assert parse_space(f"[params]\n{params}\n").warnings() == []


def test_check_prints_the_warning(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('[params]\nactivation = "relu"\nalpha = { uniform = [0.0, 0.4] }\n')
    assert cli.main(["check", str(path), "--sample", "0"]) == 0
    assert (
        "warning: params.alpha: has no effect: it is used only when activation = leaky_relu" in capsys.readouterr().out
    )


def test_a_bare_hpsearch_prints_its_commands_and_exits_2(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: hpsearch") and "run" in err and "regions" in err


def test_an_option_error_names_the_option_once(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "x.toml"), "--trials", "0"]) == 2
    assert capsys.readouterr().err.strip() == "hpsearch: hpsearch run: --trials must be at least 1, got 0"


@pytest.mark.parametrize("command", ["run", "check", "worker", "show", "regions", "narrow", "plot", "edge"])
def test_every_command_has_a_description_in_its_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    usage, _, rest = capsys.readouterr().out.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert usage.startswith(f"usage: hpsearch {command}")
    assert description.strip() and not description.startswith(("options:", "positional arguments:")), description


SMALL = """
[study]
name = "q"
dataset = "digits"
epochs = 3
trials = 2
test_top = 0

[params]
hidden = [32]
lr = 0.1
"""


def test_quiet_output_starts_with_the_tables_not_a_blank_line(tmp_path, capsys):
    path = tmp_path / "q.toml"
    path.write_text(textwrap.dedent(SMALL))
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "-q", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.strip() and out.splitlines()[0].strip(), out[:80]


def test_a_worker_accepts_the_path_of_a_studys_journal(tmp_path, capsys):
    path = tmp_path / "q.toml"
    path.write_text(textwrap.dedent(SMALL))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "-q", "--jobs", "1", "--trials", "2"]) == 0
    assert cli.main(["run", str(path), "--out", str(out), "-q", "--jobs", "1", "--trials", "2"]) == 0
    capsys.readouterr()
    journal = out / "q" / "optuna-journal.log"
    assert cli.main(["worker", "--storage", str(journal), "--study", "q", "-q", "--jobs", "1"]) == 0
    assert cli.main(["worker", "--storage", f"journal:{journal}", "--study", "q", "-q", "--jobs", "1"]) == 0
    assert cli.main(["worker", "--storage", str(tmp_path / "nope.log"), "--study", "q", "-q"]) == 2
    assert "no such journal file" in capsys.readouterr().err


def test_show_on_a_space_file_or_a_results_root_says_what_it_is(tmp_path, capsys):
    path = tmp_path / "q.toml"
    path.write_text(textwrap.dedent(SMALL))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "-q", "--jobs", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["show", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"hpsearch: {path}: a file, not a results directory — a space file: run it with `hpsearch run`"
    )
    assert cli.main(["show", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"hpsearch: {out} is a results root, not a study; its study: {out / 'q'}"
    path.with_name("r.toml").write_text(textwrap.dedent(SMALL).replace('name = "q"', 'name = "r"'))
    assert cli.main(["run", str(path.with_name("r.toml")), "--out", str(out), "-q", "--jobs", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["regions", str(out)]) == 2
    assert f"name one of its 2 studies: {out / 'q'}, {out / 'r'}" in capsys.readouterr().err


def test_a_bare_value_in_where_is_told_to_be_quoted(tmp_path, capsys):
    path = tmp_path / "q.toml"
    path.write_text(
        textwrap.dedent(SMALL).replace("lr = 0.1", 'lr = 0.1\nnormalizer = { choice = ["min_max", "z_score"] }')
    )
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "-q", "--jobs", "1", "--trials", "4"]) == 0
    capsys.readouterr()
    assert cli.main(["show", str(out / "q"), "--where", "normalizer == z_score"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "'z_score' is a value of column 'normalizer', not a column; quote it: \"normalizer == 'z_score'\""
    ), err
