"""The study layer's pieces: per-trial seeded sampling, the claimed trial queue, accounting."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch import study as st


def new_study(seed=0):
    return optuna.create_study(sampler=st.TrialSeededSampler(seed), direction="maximize")


def draw(study, trial_id):
    trial = optuna.Trial(study, trial_id)
    return trial.suggest_float("lr", 1e-3, 1.0, log=True), trial.suggest_int("n", 1, 100)


def test_a_trial_draws_the_same_configuration_whatever_order_trials_start_in():
    a, b = new_study(), new_study()
    st.top_up(a, 3)
    st.top_up(b, 3)
    first = {a._storage.get_trial_number_from_id(t): draw(a, t) for t in [st.claim(a) for _ in range(3)]}
    ids = [st.claim(b) for _ in range(3)]
    second = {b._storage.get_trial_number_from_id(t): draw(b, t) for t in reversed(ids)}
    assert first == second
    assert len(set(first.values())) == 3


def test_another_seed_draws_other_configurations():
    a, b = new_study(0), new_study(1)
    st.top_up(a, 1)
    st.top_up(b, 1)
    assert draw(a, st.claim(a)) != draw(b, st.claim(b))


def test_a_retried_trial_draws_what_the_interrupted_one_would_have():
    s = new_study()
    st.top_up(s, 2)
    t0 = st.claim(s)
    assert st.mark_failed(s, t0, "interrupted: test", retry=True)
    ref = new_study()
    expected = draw(ref, _claimed_first(ref))
    retry = [t for t in s.get_trials() if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    ids = [st.claim(s), st.claim(s)]
    by_number = {s._storage.get_trial_number_from_id(i): i for i in ids}
    assert draw(s, by_number[retry[0].number]) == expected


def _claimed_first(study):
    st.top_up(study, 1)
    return st.claim(study)


def test_claim_gives_each_waiting_trial_once_then_none():
    s = new_study()
    assert st.top_up(s, 4) == 4
    ids = [st.claim(s) for _ in range(4)]
    assert len(set(ids)) == 4 and st.claim(s) is None
    assert st.top_up(s, 4) == 0  # running ones count


def test_an_interrupted_and_retried_trial_is_not_counted_twice():
    s = new_study()
    st.top_up(s, 2)
    t = st.claim(s)
    st.mark_failed(s, t, "interrupted", retry=True)
    c = st.effective_trials(s)
    assert c["retried"] == 1 and c["FAIL"] == 0 and c["WAITING"] == 2
    assert st.top_up(s, 2) == 0


def test_marking_a_finished_trial_failed_changes_nothing():
    s = new_study()
    st.top_up(s, 1)
    t = st.claim(s)
    s.tell(s._storage.get_trial_number_from_id(t), 0.5)
    assert st.mark_failed(s, t, "late", retry=True) is False
    assert s.trials[0].state == TrialState.COMPLETE and len(s.trials) == 1


@pytest.mark.parametrize("name", ["random", "tpe", "qmc"])
def test_every_sampler_name_builds(name):
    assert isinstance(st.make_sampler(name, 0), optuna.samplers.BaseSampler)


def test_an_unknown_sampler_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown sampler 'grid' .allowed: random, tpe, qmc"):
        st.make_sampler("grid", 0)
