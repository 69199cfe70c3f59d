"""Patience shared by every rule: streaks kept in plain-dict state, and the loop of the per-layer
rules, with one verdict semantics (clear while counting, no verdict only for what was not judged)."""

import json

import pytest

from tripwire.rules._layers import judge_layers
from tripwire.rules._streak import Streak, advance, current, end
from tripwire.rules.dead_relu import DeadRelu
from tripwire.rules.small_updates import SmallUpdates
from tripwire.rules.underfit import Underfit
from tripwire.stats import Sample


def test_a_streak_counts_samples_in_a_row_from_its_first_step():
    runs = {}
    assert advance(runs, "w", True, 10) == Streak(1, 10, 10, 1.0)
    assert advance(runs, "w", True, 20) == Streak(2, 10, 20, 2.0)
    assert runs == {"w": [2, 10]}
    assert advance(runs, "w", False, 30) == Streak(0, None, 30, 0.0) and runs == {}
    assert advance(runs, "w", True, 40).steps == "step 40"


def test_a_weighted_streak_stores_its_length_and_reaches_patience_in_training():
    state = {}
    for step in (50, 100, 150):
        streak = advance(state, "over", True, step, weight=0.5)
    assert state["over"] == [3, 50, 1.5] and not streak.reached(2)
    assert advance(state, "over", True, 200, weight=0.5).reached(2)
    end(state, "over")
    assert current(state, "over", 250) == Streak(step=250)


def test_state_is_plain_json():
    state = {"runs": {}}
    advance(state["runs"], "fc.weight", True, 10)
    advance(state, "over", True, 10, weight=1 / 3)
    assert json.loads(json.dumps(state)) == state
    assert current(json.loads(json.dumps(state)), "over", 10).length == pytest.approx(1 / 3)


@pytest.mark.parametrize(("saved", "count", "length"), [(2, 2, 2.0), (1.5, 2, 1.5), (0, 0, 0.0), (0.0, 0, 0.0)])
def test_a_bare_count_from_an_older_checkpoint_keeps_counting(saved, count, length):
    state = {"misses": saved}
    assert current(state, "misses", 70) == (Streak(count, None, 70, length) if count else Streak(step=70))
    assert advance(state, "misses", True, 80).length == length + 1


def test_a_streak_is_not_reached_before_it_holds_at_all():
    assert not Streak(step=10).reached(1) and Streak(1, 10, 10, 1.0).reached(1)
    assert Streak(6, 10, 60, 6 * (1 / 3)).reached(2)  # float sums of thirds


def fired_and_cleared(rule, series_per_sample, key):
    return [[(v.subject, v.fired) for v in rule.check(Sample(10 * (i + 1), stats={key: series}))]
            for i, series in enumerate(series_per_sample)]


def test_per_layer_rules_clear_while_counting_and_fire_at_patience():
    rule = DeadRelu("dead_relu", DeadRelu.Params(patience=3))
    key = rule.needs()[0].key
    out = fired_and_cleared(rule, [{"fc1": 0.9, "fc2": 0.1}] * 4, key)
    assert out == [[("fc1", False), ("fc2", False)]] * 2 + [[("fc1", True), ("fc2", False)]] * 2


def test_per_layer_subjects_absent_from_a_sample_get_no_verdict_and_keep_their_streak():
    rule = DeadRelu("dead_relu", DeadRelu.Params(patience=2))
    key = rule.needs()[0].key
    out = fired_and_cleared(rule, [{"fc1": 0.9}, {"fc2": 0.9}, {"fc1": 0.9, "fc2": float("nan")}], key)
    assert out == [[("fc1", False)], [("fc2", False)], [("fc1", True)]]
    assert rule.state["runs"] == {"fc1": [2, 10], "fc2": [1, 20]}


def test_per_layer_loop_leaves_out_ignored_subjects_and_vectors_when_asked():
    rule = SmallUpdates("s", SmallUpdates.Params(patience=1, ignore=("head.*",)))
    items = [("head.weight", 0.0), ("fc.bias", 0.0), ("fc.weight", 0.0), ("bn.weight", 0.0)]

    def fire(name, value, streak):
        return rule.fire(name, value=value, threshold=1.0, message=streak.steps, suggestion="")

    ndims = {"bn.weight": 1, "fc.weight": 2}
    both = judge_layers(rule, items, 10, patience=1, counts=lambda v: v < 1.0, fire=fire)
    weights = judge_layers(rule, items, 20, patience=1, counts=lambda v: v < 1.0, fire=fire, ndims=ndims)
    assert [v.subject for v in both] == ["fc.bias", "fc.weight", "bn.weight"]
    assert [(v.subject, v.message) for v in weights] == [("fc.weight", "steps 10..20")]


def test_a_loss_rule_clears_the_windows_that_count_towards_patience():
    rule = Underfit("underfit", Underfit.Params(min_steps=30, window=10, patience=3))
    out = [(s, v.fired) for s in range(1, 51) for v in rule.check(Sample(s, stats={"loss": {None: 2.3}}))]
    # plateaued windows close at 20, 30, 40, 50: the verdicts begin at min_steps, counting clears
    assert out == [(30, False), (40, True), (50, True)]
