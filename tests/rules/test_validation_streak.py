"""Patience of the rules that judge validation runs is counted in training, not in validations:
each validation advances a streak by ``epochs_since_val`` (at most 1; 1 when absent), so a run
validated twice per epoch fires after the same training as one validated once per epoch."""

import json
import math

import pytest

from tripwire.rules._streak import reached
from tripwire.rules._validation_streak import in_a_row, validation_weight
from tripwire.rules.classifier_confusion import ClassifierConfusion
from tripwire.rules.overfit import Overfit
from tripwire.rules.overtraining import Overtraining
from tripwire.stats import Sample

SWAPPED = {"0,0": 50.0, "1,2": 50.0, "2,1": 50.0}  # classes 1 and 2 swapped: both fail
LEARNED = {"0,0": 50.0, "1,1": 50.0, "2,2": 50.0}


class Scripted:
    """Validation samples of one rule: a good start, then failing validations, optionally a cure."""

    def __init__(self, cls):
        self.rule = cls(cls.kind)
        self.step = 0
        self.train = 1.0

    def _validation(self, failing: bool, weight: float | None) -> list:
        self.step += 10
        stats = {}
        if self.rule.kind == "classifier_confusion":
            stats["confusion"] = dict(SWAPPED if failing else LEARNED)
        else:
            self.train *= 0.8  # the training loss keeps falling
            self.rule.check(Sample(self.step, stats={"loss": {None: self.train}}))
            # overfit: far above the training loss and no new best; overtraining: no new best
            stats["val_loss"] = {None: 1.0 + 0.01 * self.step if failing else 0.5 - 0.001 * self.step}
        if weight is not None:
            stats["epochs_since_val"] = {None: weight}
        return self.rule.check(Sample(self.step, stats=stats))

    def fired(self, failing: bool = True, weight: float | None = None) -> bool:
        return any(v.fired for v in self._validation(failing, weight))

    def failing_until_fired(self, weight: float | None, limit: int = 60) -> int | None:
        """Failing validations until the rule fires (after a good one that sets the best)."""
        self.fired(failing=False, weight=weight)
        for n in range(1, limit + 1):
            if self.fired(weight=weight):
                return n
        return None


RULES = [Overfit, Overtraining, ClassifierConfusion]


@pytest.fixture(params=RULES, ids=lambda c: c.kind, name="cls")
def _cls(request):
    return request.param


def test_half_epoch_validations_need_twice_as_many_to_fire(cls):
    patience = cls.Params().patience
    assert Scripted(cls).failing_until_fired(weight=None) == patience
    assert Scripted(cls).failing_until_fired(weight=1.0) == patience
    assert Scripted(cls).failing_until_fired(weight=0.5) == 2 * patience
    assert Scripted(cls).failing_until_fired(weight=0.1) == 10 * patience


def test_validation_every_few_epochs_counts_one_each_as_before(cls):
    assert Scripted(cls).failing_until_fired(weight=3.0) == cls.Params().patience


def test_a_validation_that_clears_resets_the_streak(cls):
    run = Scripted(cls)
    run.fired(failing=False, weight=0.5)
    patience = cls.Params().patience
    # overtraining judges the median of the last 3 val_loss values: two good ones make a new best
    cure = 2 if cls is Overtraining else 1
    for _ in range(2 * patience - cure):
        assert not run.fired(weight=0.5)
    for _ in range(cure):
        assert not run.fired(failing=False, weight=0.5)  # good validations: the streak starts over
    for _ in range(2 * patience - 1):
        assert not run.fired(weight=0.5)
    assert run.fired(weight=0.5)
    assert json.loads(json.dumps(run.rule.state)) == run.rule.state


def test_validating_again_without_training_adds_nothing(cls):
    run = Scripted(cls)
    run.fired(failing=False)
    for _ in range(10):
        assert not run.fired(weight=0.0)


@pytest.mark.parametrize("value, weight", [(0.25, 0.25), (1.0, 1.0), (2.0, 1.0), (0.0, 0.0), (-1.0, 0.0),
                                           (math.nan, 1.0), (math.inf, 1.0)])
def test_weight_is_the_epochs_since_the_previous_validation_within_0_and_1(value, weight):
    assert validation_weight(Sample(1, stats={"epochs_since_val": {None: value}})) == weight


def test_thirds_reach_a_whole_patience_despite_rounding():
    streak = 0.0
    for _ in range(6):
        streak += 1 / 3
    assert reached(streak, 2) and not reached(5 / 3, 2)


def test_messages_say_how_much_training_the_streak_covers():
    run = Scripted(Overfit)
    run.failing_until_fired(weight=0.5)
    (v,) = run._validation(True, 0.5)
    assert "7 validations in a row (3.5 epochs of training)" in v.message
    assert v.evidence["validations_over"] == 7 and v.evidence["epochs_over"] == pytest.approx(3.5)
    assert in_a_row(1, 1.0) == "1 validation in a row" and in_a_row(2, 1.0).endswith("(1 epoch of training)")


@pytest.mark.parametrize("saved", [{"over": 1}, {"over": 1.0, "over_n": 1}])
def test_checkpoints_from_before_keep_counting(saved):
    """Rule state saved before the streak was weighted (an integer count), and before streaks were
    stored as records (a weighted count next to a count of validations)."""
    rule = Overfit("overfit")
    rule.state.update(saved, initial=1.0, best_val=0.5)
    rule.check(Sample(10, stats={"loss": {None: 0.2}}))
    assert not any(v.fired for v in rule.check(Sample(10, stats={"val_loss": {None: 2.0}})))
    (v,) = rule.check(Sample(20, stats={"val_loss": {None: 2.1}}))
    assert v.fired and v.evidence["epochs_over"] == 3.0 and v.evidence["validations_over"] == 3
    assert rule.state["over"] == [3, None]  # the first step of a restored streak is unknown


def test_confusion_streaks_are_per_class():
    rule = ClassifierConfusion("cc")
    one_swapped = {"0,0": 50.0, "1,1": 50.0, "2,1": 50.0}  # class 2 is always predicted as 1
    out = [[(v.subject, v.fired) for v in rule.check(Sample(s, stats={"confusion": one_swapped,
                                                                      "epochs_since_val": {None: 0.5}}))]
           for s in range(1, 5)]
    assert [dict(o)["2"] for o in out] == [False, False, False, True]
    assert not any(dict(o)["1"] or dict(o)["0"] for o in out)
    assert rule.state["failing"]["2"] == [4, 1, 2.0]  # 4 validations from step 1: 2 epochs of training
