"""The ``[study]`` section: what to run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hpsearch.errors import HPSearchError, SpaceError
from hpsearch.space._rules import _AT_LEAST_ONE, _Rule, suggest
from hpsearch.vocabulary import METRICS, PRUNERS, SAMPLERS, SEED_MAX, clip, study_name_problem


@dataclass(frozen=True)
class StudySettings:
    """The ``[study]`` section: what to run. ``name`` defaults to the file's stem."""

    name: str
    dataset: str = "digits"
    validation: float = 0.2
    epochs: int = 20
    metric: str = "val_accuracy"
    trials: int = 100
    seed: int = 0
    sampler: str = "random"
    pruner: str = "none"
    test_top: int = 10  # how many of the best runs get a test-set score at the end
    patience: int = 0  # a trial stops after this many epochs without a better validation metric (0: never)

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"``, from the metric."""
        return METRICS[self.metric]


_STUDY_RULES: dict[str, _Rule] = {
    "validation": _Rule("float", low=0, high=1, low_open=True),
    "epochs": _AT_LEAST_ONE,
    "metric": _Rule("name", family="metric", registry=lambda: METRICS),
    "trials": _AT_LEAST_ONE,
    "seed": _Rule("int", low=0, high=SEED_MAX, high_open=False),
    "sampler": _Rule("name", family="sampler", registry=lambda: dict.fromkeys(SAMPLERS)),
    "pruner": _Rule("name", family="pruner", registry=lambda: dict.fromkeys(PRUNERS)),
    "test_top": _Rule("int", low=0),
    "patience": _Rule("int", low=0),
}


def with_overrides(settings: StudySettings, overrides: dict) -> StudySettings:
    """``settings`` with the given values (``None``: keep the file's) put in, each checked by
    the rule its key has in the file (``--seed -1`` is refused like ``seed = -1``); a
    problem is an :class:`HPSearchError` naming the option. ``name`` and ``dataset`` are
    the caller's to check."""
    values = {}
    for key, value in overrides.items():
        if value is None:
            continue
        rule = _STUDY_RULES.get(key)
        if rule is not None:
            problem = rule.problem(value)
            if problem:
                raise HPSearchError(f"--{key.replace('_', '-')} {problem}")
            value = rule.coerce(value)
        values[key] = value
    return dataclasses.replace(settings, **values)


def _parse_study(table, default_name: str) -> StudySettings:
    if not isinstance(table, dict):
        raise SpaceError("study", f"must be a table ([study]), got {table!r}")
    allowed = [f.name for f in dataclasses.fields(StudySettings)]
    values = {"name": default_name}
    for key, value in table.items():
        path = f"study.{key}"
        if key not in allowed:
            raise SpaceError(path, f"unknown key{suggest(key, allowed)}")
        if key == "name":
            problem = study_name_problem(value)
            if problem:
                raise SpaceError(path, problem)
        elif key == "dataset":
            if not isinstance(value, str) or not value.strip():
                raise SpaceError(path, f"must be a non-empty string, got {clip(repr(value))}")
        else:
            rule = _STUDY_RULES[key]
            problem = rule.problem(value)
            if problem:
                raise SpaceError(path, problem)
            value = rule.coerce(value)
        values[key] = value
    return StudySettings(**values)
