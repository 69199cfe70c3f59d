"""`classifier_confusion` on scripted validation confusion matrices."""

import json

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.classifier_confusion import ClassifierConfusion
from tripwire.stats import CATALOGUE, Sample


def series(matrix):
    """Matrix rows = true class, columns = predicted class, as the `confusion` series."""
    return {f"{t},{p}": float(c) for t, row in enumerate(matrix) for p, c in enumerate(row) if c}


def healthy_matrix(k=10, per_class=100, seed=0):
    """Recall 0.6-0.9; of the errors, up to 80% go to one look-alike class (cat/dog), the rest spread."""
    rng = np.random.default_rng(seed)
    m = np.zeros((k, k))
    for t in range(k):
        probs = np.full(k, 0.0)
        recall = rng.uniform(0.6, 0.9)
        twin = (t + 1) % k
        errors = 1 - recall
        probs[twin] = errors * rng.uniform(0.3, 0.8)
        others = [p for p in range(k) if p not in (t, twin)]
        probs[others] = (errors - probs[twin]) / len(others)
        probs[t] = recall
        m[t] = rng.multinomial(per_class, probs / probs.sum())
    return m


ONE = ClassifierConfusion.Params(patience=1)  # judge each validation on its own


def check(rule, matrix, step=100):
    return rule.check(Sample(step, stats={"confusion": series(matrix)}))


@pytest.mark.parametrize("seed", range(5))
def test_decent_classifier_on_hard_data_stays_silent(seed):
    out = check(ClassifierConfusion("cc"), healthy_matrix(seed=seed))
    assert [v.subject for v in out] == [str(c) for c in range(10)]
    assert not any(v.fired for v in out)


def test_decent_binary_classifier_stays_silent():
    out = check(ClassifierConfusion("cc"), [[420, 80], [150, 350]])  # recalls 0.84 and 0.70
    assert [v.fired for v in out] == [False, False]


def test_two_swapped_classes_fire_naming_each_other():
    m = healthy_matrix(seed=1)
    m[3], m[5] = 0, 0
    m[3, 5], m[5, 3] = 100, 100  # labels 3 and 5 swapped: every 3 is predicted as 5, and back
    fired = {v.subject: v for v in check(ClassifierConfusion("cc", ONE), m) if v.fired}
    assert set(fired) == {"3", "5"}
    assert fired["3"].evidence["confused_with"] == "5" and fired["3"].value == 1.0
    assert fired["3"].evidence["recall"] == 0.0 and fired["3"].threshold == 0.5
    assert "class 3: recall 0%" in fired["3"].message and "predicted as class 5" in fired["3"].message
    assert "label mapping" in fired["3"].suggestion


def test_classifier_that_collapses_after_learning_fires_for_every_other_class():
    rule = ClassifierConfusion("cc", ONE)
    assert not any(v.fired for v in check(rule, 40 * np.eye(4) + 3))  # it had learned the classes
    m = np.zeros((4, 4))
    m[:, 0] = 50  # then everything predicted as class 0
    out = check(rule, m, step=200)
    assert [(v.subject, v.fired) for v in out] == [("0", False), ("1", True), ("2", True), ("3", True)]
    assert all(v.evidence["confused_with"] == "0" for v in out if v.fired)


@pytest.mark.parametrize("first", ["collapsed", "random"])
def test_a_model_that_has_learned_nothing_yet_is_not_judged(first):
    # MobileNetV2 and ViT start like this for ~150 steps: every sample predicted as one class (a
    # different one at each validation), or predictions that ignore the class. That is underfit's
    # business; the rule starts judging once the predictions depend on the true class.
    rng = np.random.default_rng(0)
    rule = ClassifierConfusion("cc", ONE)
    for step, winner in zip((100, 200, 300), (0, 2, 1)):
        m = np.zeros((4, 4))
        if first == "collapsed":
            m[:, winner] = 64
        else:
            m = rng.multinomial(64, [0.25] * 4, size=4).astype(float)
        assert check(rule, m, step) == []
    assert [v.fired for v in check(rule, [[60, 4, 0, 0], [0, 0, 64, 0], [0, 0, 64, 0], [0, 0, 0, 64]], 400)] \
        == [False, True, False, False]  # informative now: class 1 always predicted as 2 fires


def test_validations_while_val_loss_improves_start_every_streak_over():
    rule = ClassifierConfusion("cc", ClassifierConfusion.Params(patience=2))
    confused = series([[60, 4, 0], [2, 6, 56], [0, 4, 60]])  # class 1 mostly predicted as 2

    def validate(step, val_loss):
        return rule.check(Sample(step, stats={"confusion": confused, "val_loss": {None: val_loss}}))[1].fired

    # a ViT-like run: the validation loss still falls, the class is judged only once it stops
    assert [validate(s, v) for s, v in [(100, 1.2), (200, 1.0), (300, 0.8), (400, 0.81), (500, 0.805)]] \
        == [False, False, False, False, True]
    # a Keras BatchNorm ResNet: val_loss rises above its start, then falls while the classes separate
    rule = ClassifierConfusion("cc", ClassifierConfusion.Params(patience=2))
    one_class = series([[64, 0, 0], [64, 0, 0], [64, 0, 0]])  # the first validation: all class 0
    assert rule.check(Sample(32, stats={"confusion": one_class, "val_loss": {None: 2.5}})) == []
    assert not any(validate(s, v) for s, v in [(64, 3.5), (96, 2.9), (128, 1.9), (160, 1.2)])
    # validation labels that contradict training: val_loss rises as the model learns, judged at once
    rule = ClassifierConfusion("cc", ClassifierConfusion.Params(patience=2))
    assert [validate(s, v) for s, v in [(100, 0.7), (200, 0.9), (300, 1.3)]] == [False, True, True]


def test_low_recall_with_spread_errors_fires_on_min_diag():
    m = healthy_matrix(seed=2)
    m[4] = 11
    m[4, 4] = 1  # recall 1%, errors spread evenly
    (v,) = [v for v in check(ClassifierConfusion("cc", ONE), m) if v.fired]
    assert v.subject == "4" and v.threshold == 0.2 and v.value == pytest.approx(1 / 100)
    assert "recall 1% < 20%" in v.message and "most often mistaken for class" in v.message


def test_small_classes_are_not_judged():
    m = np.array([[100, 0, 0], [0, 0, 20], [0, 20, 0]])  # 1 and 2 swapped, but 20 < min_samples
    assert [v.subject for v in check(ClassifierConfusion("cc", ONE), m)] == ["0"]
    assert [v.subject
            for v in check(ClassifierConfusion("cc", ClassifierConfusion.Params(min_samples=20, patience=1)), m)
            if v.fired] == ["1", "2"]


def test_engine_reports_each_class_once_and_rearms_after_a_fix():
    engine = Engine(Config.load({"rules": {"classifier_confusion": {}}}), framework="torch")
    swapped = [[100, 0, 0], [0, 0, 100], [0, 100, 0]]
    fixed = [[100, 0, 0], [0, 90, 10], [0, 10, 90]]
    subjects = []
    for step, m in zip(range(100, 700, 100), [swapped, swapped, fixed, swapped, swapped, fixed]):
        subjects += [(f.step, f.subject) for f in engine.evaluate(Sample(step, stats={"confusion": series(m)}))]
    # classes 1 and 2 are reported at the second swapped validation (patience 2) and again after
    # the fix; never while latched
    assert sorted({step for step, _ in subjects}) == [200, 500]
    for step in (200, 500):
        named = " ".join(s for at, s in subjects if at == step)
        assert "1" in named and "2" in named and "0" not in named


def test_bad_subject_is_an_error_the_engine_isolates():
    rule = ClassifierConfusion("cc")
    with pytest.raises(ValueError, match="'true,predicted'"):
        rule.check(Sample(1, stats={"confusion": {"3": 5.0}}))
    engine = Engine(Config.load({"rules": {"classifier_confusion": {}}}), framework="keras")
    assert engine.evaluate(Sample(1, stats={"confusion": {"3": 5.0}})) == []
    assert "classifier_confusion" in engine.disabled


def test_each_validation_stands_alone_with_patience_one():
    rule = ClassifierConfusion("cc", ONE)
    assert not check(rule, np.array([[100, 0], [0, 100]]))[1].fired
    assert check(rule, np.array([[100, 0], [100, 0]]))[1].fired
    assert not check(rule, np.array([[100, 0], [0, 100]]))[1].fired
    assert json.loads(json.dumps(rule.state)) == rule.state
    assert rule.state == {"failing": {}, "recall": {}, "separating": True, "last_val": None}
    assert rule.check(Sample(5, stats={"loss": {None: 1.0}})) == []


def test_default_patience_ignores_one_bad_validation_and_fires_on_two():
    rule = ClassifierConfusion("cc")
    untrained = np.array([[100, 0], [100, 0]])
    assert not check(rule, np.array([[100, 0], [0, 100]]))[1].fired  # learned
    assert not check(rule, untrained)[1].fired                      # one bad validation
    assert not check(rule, np.array([[100, 0], [0, 100]]))[1].fired  # learned again: the count resets
    assert not check(rule, untrained)[1].fired
    assert check(rule, untrained)[1].fired                          # two in a row
    assert json.loads(json.dumps(rule.state)) == rule.state


def test_contract():
    assert all(n.stat in CATALOGUE for n in ClassifierConfusion("cc").needs())
    assert set(ClassifierConfusion.frameworks) == {"torch", "keras"}
    assert all(f.description for f in ClassifierConfusion.Params.model_fields.values())


def test_a_class_still_being_learned_is_not_failing():
    # a 10-class-style early validation: class 1 at 10% recall, then 35%: rising, so not judged
    rule = ClassifierConfusion("cc", ONE)
    early = np.array([[90, 10, 0], [90, 10, 0], [0, 0, 100]])  # class 2 learned, class 1 not yet
    assert check(rule, early)[1].fired  # the first look: 10% of 100 is well under 20%
    rule = ClassifierConfusion("cc", ClassifierConfusion.Params(patience=2))
    assert not check(rule, early)[1].fired
    assert not check(rule, np.array([[90, 10, 0], [65, 35, 0], [0, 0, 100]]))[1].fired  # learning: cleared
    stuck = ClassifierConfusion("cc", ClassifierConfusion.Params(patience=2))
    check(stuck, early)
    assert check(stuck, np.array([[90, 10, 0], [89, 11, 0], [0, 0, 100]]))[1].fired  # no real rise: still failing


def test_a_share_within_the_noise_of_few_samples_does_not_count():
    # 30 samples of class 1, 4 recalled (13%), the rest split over two classes: under 0.2, but within
    # 2 standard errors (0.15) of it
    row = np.array([[30, 0, 0], [13, 4, 13], [0, 0, 30]])
    assert not check(ClassifierConfusion("cc", ONE), row)[1].fired
    assert check(ClassifierConfusion("cc", ClassifierConfusion.Params(patience=1, z=0)), row)[1].fired
    none = np.array([[30, 0, 0], [15, 0, 15], [0, 0, 30]])
    assert check(ClassifierConfusion("cc", ONE), none)[1].fired  # none recalled: far beyond the noise
