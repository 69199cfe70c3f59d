"""`overfit` on scripted streams: train loss every 10 steps, val_loss at each epoch end (100 steps)."""

import json

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.overfit import Overfit
from tripwire.stats import CATALOGUE, Sample


def epochs(train_at, val_at, n_epochs, steps=100, every=10):
    """Train samples every `every` steps, then a val_loss sample at each epoch end."""
    out = []
    for e in range(n_epochs):
        for s in range(e * steps + every, (e + 1) * steps + 1, every):
            out.append(Sample(s, epoch=e, stats={"loss": {None: float(train_at(s))}}))
        out.append(Sample((e + 1) * steps, epoch=e, stats={"val_loss": {None: float(val_at(e))}}))
    return out


def verdicts(rule, samples):
    return [(s.epoch, v.fired) for s in samples for v in rule.check(s)]


def test_growing_gap_fires_at_the_third_validation_over_ratio():
    # train falls 1.0 -> ~0.15; val bottoms out at epoch 3 and climbs
    train = lambda s: np.exp(-s / 400)
    val = lambda e: [1.0, 0.9, 0.85, 0.84, 0.9, 1.0, 1.1, 1.2][e]
    rule = Overfit("overfit")
    out = verdicts(rule, epochs(train, val, 8))
    # r per epoch (train = that epoch's mean): 0.14, 0.32, 0.60, 1.04, 1.80, ...: over 0.5 from epoch 2,
    # but val keeps setting new bests until epoch 3; epochs 4, 5, 6 are over and not improving (4 and 5
    # count towards patience and clear)
    assert out == [(e, False) for e in range(6)] + [(6, True), (7, True)]


def test_healthy_noisy_run_stays_silent():
    rng = np.random.default_rng(0)
    curve = lambda s: 2.0 * np.exp(-s / 600) + 0.3
    train = lambda s: curve(s) + 0.1 * rng.standard_normal()
    val = lambda e: 1.15 * curve((e + 0.5) * 100) * (1 + 0.05 * rng.standard_normal())
    rule = Overfit("overfit")
    out = verdicts(rule, epochs(train, val, 30))
    assert len(out) == 30 and not any(fired for _, fired in out)


def test_a_large_gap_that_stopped_growing_is_not_overfitting():
    # the training loss heads for 0 while val_loss holds at its best (boosting with early stopping):
    # r is ~2 from epoch 5 on and never grows by ratio, and val kept most of the training progress
    train = lambda s: 0.6 * np.exp(-s / 150)
    val = lambda e: [0.58, 0.4, 0.3, 0.22, 0.17, 0.152][e] if e < 6 else 0.152 + 0.003 * (e % 2 + 1)
    rule = Overfit("overfit")
    out = verdicts(rule, epochs(train, val, 20))
    assert len(out) == 20 and not any(fired for _, fired in out)


def test_a_gap_that_grows_after_the_best_validation_says_so():
    train = lambda s: 0.6 * np.exp(-s / 150)
    val = lambda e: [0.58, 0.4, 0.3, 0.22, 0.17, 0.152][e] if e < 6 else 0.152 + 0.05 * (e - 5)
    rule = Overfit("overfit")
    fired = [v for s in epochs(train, val, 12) for v in rule.check(s) if v.fired]
    assert fired and fired[0].evidence["gap_grew"] and "gap grew since the best validation" in fired[0].message


def test_memorizing_without_generalizing_fires_though_the_gap_never_grows():
    # 80 noisy rows fitted at once (deep trees, validated by 1 - AUC): train is near 0 after its first
    # value, val sits at chance from the first validation; r is huge from the start and grows by
    # less than ratio after the best (epoch 2), and nothing of the training progress shows
    train = lambda s: 0.1 if s == 10 else 1e-4
    val = lambda e: [0.46, 0.452, 0.449][e] if e < 3 else 0.4505 + 0.0005 * (e % 2)
    rule = Overfit("overfit")
    fired = [v for s in epochs(train, val, 8) for v in rule.check(s) if v.fired]
    assert fired and not fired[0].evidence["gap_grew"] and fired[0].evidence["memorizes"]
    assert "kept less than 0.5 of the training loss's progress" in fired[0].message


def test_reference_is_the_mean_train_loss_since_the_previous_validation():
    rule = Overfit("overfit", Overfit.Params(patience=1))
    rule.check(Sample(5, stats={"loss": {None: 1.0}}))
    (v,) = rule.check(Sample(5, stats={"val_loss": {None: 1.2}}))  # the best validation so far
    assert not v.fired
    for step, loss in [(10, 1.0), (20, 0.2)]:
        assert rule.check(Sample(step, stats={"loss": {None: loss}})) == []
    (v,) = rule.check(Sample(20, stats={"val_loss": {None: 1.5}}))
    assert v.fired and v.evidence["train_loss"] == pytest.approx(0.6) and v.value == pytest.approx(1.5)
    assert "1.5" in v.message and "0.6" in v.message
    # no train loss since then: the last reference stays
    (v,) = rule.check(Sample(30, stats={"val_loss": {None: 0.7}}))
    assert not v.fired and rule.state["train"]["last"] == pytest.approx(0.6)


def test_a_validation_under_ratio_resets_patience():
    rule = Overfit("overfit", Overfit.Params(z=0))  # this alternating stream would read as noise
    gaps = [1.0, 1.0, 0.2, 1.0, 1.0, 0.2, 1.0, 1.0, 1.0]  # 3 in a row only at the end
    out = []
    for i, r in enumerate(gaps):
        rule.check(Sample(i * 100 + 50, stats={"loss": {None: 0.5}}))
        out += [(i, v.fired) for v in rule.check(Sample(i * 100 + 100, stats={"val_loss": {None: 0.5 * (1 + r)}}))]
    # validations 0 and 2 set new bests; 5 is back under ratio and starts the count over: 6, 7, 8 fire at 8
    assert out == [(i, False) for i in range(8)] + [(8, True)]


def test_xgboost_rounds_carry_both_losses_in_one_sample():
    engine = Engine(Config.load({"rules": {"overfit": {"patience": 2}}}), framework="xgboost")
    findings = []
    for rnd in range(50):
        train = 0.6 * 0.95 ** rnd
        val = 0.6 * 0.99 ** min(rnd, 20) * (1 + 0.01 * max(0, rnd - 20))  # best at round 20, then rising
        findings += engine.evaluate(Sample(rnd, stats={"loss": {None: train}, "val_loss": {None: val}}))
    # the gap is over 0.5 from round 10, but val improves until round 20: rounds 21 and 22 fire, once
    assert [f.step for f in findings] == [22]
    assert findings[0].evidence["val_loss"] > findings[0].evidence["train_loss"]


def test_val_before_any_train_loss_is_skipped():
    rule = Overfit("overfit")
    assert rule.check(Sample(0, stats={"val_loss": {None: 2.3}})) == []
    assert rule.check(Sample(5, stats={"grad_norm": {"w": 1.0}})) == []


def test_state_round_trips_through_json():
    rng = np.random.default_rng(2)
    train = lambda s: np.exp(-s / 300) * (1 + 0.2 * rng.standard_normal())
    val = lambda e: 0.8 + 0.05 * e * (1 + 0.3 * rng.standard_normal())
    samples = epochs(train, val, 20)
    params = Overfit.Params(patience=2)
    ref = Overfit("overfit", params)
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = Overfit("overfit", params)
    head = [v for s in samples[:97] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state
    second = Overfit("overfit", params)
    second.state = state
    assert head + [v for s in samples[97:] for v in second.check(s)] == whole


def test_contract():
    assert all(n.stat in CATALOGUE for n in Overfit("overfit").needs())
    assert set(Overfit.frameworks) == {"torch", "keras", "xgboost"}
    assert all(f.description for f in Overfit.Params.model_fields.values())


def test_near_zero_training_loss_on_easy_data_is_not_a_gap():
    # train starts at 1.4 and falls to ~0.009; val settles at ~0.05: a 5x ratio to train, but small
    # against the scale the loss started from (floor 0.1 x 1.4 = 0.14)
    train = lambda s: 1.4 * np.exp(-s / 60) + 0.009
    val = lambda e: 0.05
    assert not any(fired for _, fired in verdicts(Overfit("overfit"), epochs(train, val, 8)))


def test_memorizing_fires_despite_the_floor():
    train = lambda s: 1.4 * np.exp(-s / 60) + 0.001
    val = lambda e: [1.2, 1.3, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6][e]
    assert any(fired for _, fired in verdicts(Overfit("overfit"), epochs(train, val, 8)))


def test_floor_zero_is_the_plain_relative_gap():
    train = lambda s: 1.4 * np.exp(-s / 60) + 0.009
    val = lambda e: 0.05
    rule = Overfit("overfit", Overfit.Params(floor=0.0))
    assert any(fired for _, fired in verdicts(rule, epochs(train, val, 8)))


def test_boosting_gap_while_validation_still_improves_is_healthy():
    # boosted trees drive the training loss far below validation while validation still improves
    engine = Engine(Config.load({"rules": {"overfit": {}}}), framework="xgboost")
    findings = []
    for rnd in range(200):
        train, val = 0.6 * 0.95 ** rnd + 1e-4, 0.3 + 0.3 * 0.98 ** rnd
        findings += engine.evaluate(Sample(rnd, stats={"loss": {None: train}, "val_loss": {None: val}}))
    assert findings == []


def test_a_gap_within_the_noise_of_a_tiny_validation_set_does_not_count():
    # 15 validation rows: val_loss jumps 0.09..0.16 around 0.12 while the training loss sits at 0.055
    rng = np.random.default_rng(0)
    vals = [0.12 + 0.035 * rng.standard_normal() for _ in range(30)]
    rule, quiet = Overfit("overfit"), Overfit("overfit", Overfit.Params(z=0))
    fired, fired_without_noise = [], []
    for i, val in enumerate(vals):
        for r, sink in ((rule, fired), (quiet, fired_without_noise)):
            r.check(Sample(i * 100 + 50, stats={"loss": {None: 1.1 if i == 0 else 0.055}}))
            sink += [i for v in r.check(Sample(i * 100 + 100, stats={"val_loss": {None: val}})) if v.fired]
    assert fired_without_noise and not fired


def fired_finding(rule, samples):
    return next(v for s in samples for v in rule.check(s) if v.fired)


def test_a_floored_gap_says_so_and_the_message_shows_the_value():
    # the training loss falls to ~3e-6 (memorized); the gap is measured against the floor, not against 3e-6
    train = lambda s: 2.25 * np.exp(-s / 30) + 2.7e-6
    val = lambda e: [1.2, 1.3, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6][e]
    v = fired_finding(Overfit("overfit"), epochs(train, val, 8))
    floor = v.evidence["denominator"]
    assert v.evidence["floored"] and v.evidence["denominator"] > 1000 * v.evidence["train_loss"]
    assert v.value == pytest.approx((v.evidence["val_loss"] - v.evidence["train_loss"]) / floor)
    said = f"by {v.value:.4g} x {floor:.4g}, the floor that replaces a training loss below 0.1 x the initial"
    assert said in v.message
    assert "(limit 0.5)" in v.message and "%" not in v.message


def test_an_unfloored_gap_is_relative_to_the_training_loss():
    train = lambda s: 1.0 - s / 2000
    val = lambda e: [1.1, 1.2, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6][e]
    v = fired_finding(Overfit("overfit"), epochs(train, val, 8))
    assert not v.evidence["floored"] and v.evidence["denominator"] == v.evidence["train_loss"]
    assert f"by {v.value:.4g} x the training loss (limit 0.5)" in v.message
