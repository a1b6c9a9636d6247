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


def _fail_without_requeue(study, trial_id):
    """What a kill between failing a trial and queueing its slot again leaves behind."""
    storage = study._storage
    storage.set_trial_user_attr(trial_id, "fail_reason", "interrupted: test")
    storage.set_trial_state_values(trial_id, state=TrialState.FAIL)


def test_a_slot_whose_requeue_was_lost_is_queued_by_the_next_top_up():
    s = new_study()
    st.top_up(s, 3)
    t = st.claim(s)
    _fail_without_requeue(s, t)
    c = st.effective_trials(s)
    assert c["missing"] == 1 and c["WAITING"] == 2
    assert st.top_up(s, 3) == 1
    retry = [x for x in s.get_trials() if x.state == TrialState.WAITING and st.slot_of(x) == 0]
    assert len(retry) == 1 and retry[0].system_attrs["hpsearch:retry_of"] == 0


def test_a_slot_queued_twice_runs_once_the_second_claim_is_dropped():
    s = new_study()
    st.top_up(s, 1)
    # a second process queued the same slot at the same time
    s.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"hpsearch:slot": 0}))
    first = st.claim(s)
    assert st.claim(s) is None  # the duplicate was claimed and dropped, not handed out
    trials = s.get_trials()
    assert s._storage.get_trial_number_from_id(first) == 0
    dropped = [t for t in trials if t.number == 1][0]
    assert dropped.state == TrialState.FAIL and st.is_duplicate(dropped)
    assert st.effective_trials(s)["RUNNING"] == 1 and st.effective_trials(s)["duplicates"] == 1


def test_the_second_trial_of_a_slot_is_dropped_even_when_claimed_first():
    s = new_study()
    st.top_up(s, 1)
    s.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"hpsearch:slot": 0}))
    storage = s._storage
    late = [t for t in s.get_trials() if t.number == 1][0]
    storage.set_trial_state_values(late._trial_id, state=TrialState.RUNNING)  # another worker's claim
    assert st.claim(s) is not None  # the first trial of the slot still runs (the lowest number wins)


def test_a_lower_target_leaves_the_slots_above_it_waiting_and_uncounted():
    s = new_study()
    st.top_up(s, 5)
    st.top_up(s, 3)
    ids = [st.claim(s) for _ in range(4)]
    assert ids[3] is None and len(set(ids[:3])) == 3
    c = st.effective_trials(s)
    assert c["RUNNING"] == 3 and c["WAITING"] == 0
    st.top_up(s, 5)
    assert st.claim(s) is not None


def test_fewer_trials_than_finished_are_never_counted_past_the_target():
    s = new_study()
    st.top_up(s, 4)
    for _ in range(4):
        tid = st.claim(s)
        s.tell(s._storage.get_trial_number_from_id(tid), 0.5)
    assert st.finished_configurations(s) == 4
    s.set_user_attr("hpsearch:n_trials", 2)
    assert st.effective_trials(s)["finished"] == 2 and st.effective_trials(s)["beyond"] == 2
