"""`underfit` on scripted training-loss streams: one sample every 10 steps."""

import json
import math

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.underfit import Underfit
from tripwire.stats import CATALOGUE, Sample

EVERY = 10


def stream(loss_at, steps):
    return [Sample(s, stats={"loss": {None: float(loss_at(s))}}) for s in range(EVERY, steps + 1, EVERY)]


def fired_steps(rule, samples):
    return [s.step for s in samples for v in rule.check(s) if v.fired]


def noisy(curve, noise, seed):
    rng = np.random.default_rng(seed)
    return lambda s: curve(s) * (1 + noise * rng.standard_normal())


def test_loss_stuck_at_its_start_fires_after_a_few_hundred_steps():
    # windows of 200 steps close at 200 (no previous), 400, ..., all plateaued; patience 2
    rule = Underfit("underfit")
    assert fired_steps(rule, stream(lambda s: 2.30, 1400)) == [600, 800, 1000, 1200, 1400]
    noisy_start = Underfit("underfit")  # near chance with noise, never 3% below the start
    assert fired_steps(noisy_start, stream(noisy(lambda s: 2.30, 0.01, seed=1), 800))[:1] == [600]


def test_a_loss_that_left_its_start_waits_for_min_steps():
    # fell 5% early on, then stalled at 95% of the start: judged from min_steps (1000) only
    rule = Underfit("underfit")
    assert fired_steps(rule, stream(lambda s: 2.30 if s <= 200 else 2.185, 1400)) == [1000, 1200, 1400]


def test_a_warm_up_plateau_that_then_learns_stays_silent():
    # flat for 500 steps (learning rate warming up from 0), then a healthy fall
    rule = Underfit("underfit")
    curve = lambda s: 2.3 if s <= 500 else 0.3 + 2.0 * math.exp(-(s - 500) / 200)
    assert fired_steps(rule, stream(noisy(curve, 0.02, seed=2), 3000)) == []


def test_noisy_loss_stuck_near_chance_fires():
    # a linear model on XOR-like data: the loss drifts from 0.70 to 0.69 and stays there
    rule = Underfit("underfit")
    samples = stream(noisy(lambda s: 0.69 + 0.01 * math.exp(-s / 300), 0.05, seed=0), 3000)
    verdicts = [v for s in samples for v in rule.check(s) if v.fired]
    assert verdicts and 0.9 < verdicts[0].value < 1.05
    assert "plateaued" in verdicts[0].message and "capacity" in verdicts[0].suggestion


@pytest.mark.parametrize("seed", range(3))
def test_healthy_loss_that_converges_low_stays_silent(seed):
    rule = Underfit("underfit")
    curve = lambda s: 0.2 + 2.1 * math.exp(-s / 300)
    assert fired_steps(rule, stream(noisy(curve, 0.2, seed), 5000)) == []


def test_high_but_still_falling_stays_silent():
    rule = Underfit("underfit")  # 3% per 200 steps is progress, even at 95% of the start
    assert fired_steps(rule, stream(lambda s: 2.3 * 0.97 ** (s / 200), 1400)) == []


def test_ratio_decides_how_high_is_too_high():
    curve = lambda s: 2.3 if s <= 200 else 1.6
    assert fired_steps(Underfit("underfit"), stream(curve, 2000)) == []
    rule = Underfit("underfit", Underfit.Params(ratio=0.6))  # stricter: above 60% of the start is high
    assert fired_steps(rule, stream(curve, 2000))[0] == 1000


def test_initial_is_the_mean_of_the_first_samples():
    rule = Underfit("underfit", Underfit.Params(initial_samples=2, min_steps=0, window=20, patience=1))
    for s, loss in [(10, 4.0), (20, 2.0), (30, 1.0), (40, 1.0), (50, 1.0), (60, 1.0)]:
        verdicts = rule.check(Sample(s, stats={"loss": {None: loss}}))
    assert rule.state["first"] == [4.0, 2.0]
    assert verdicts == [Underfit.clear(None)]  # 1.0 is a third of 3.0: plateaued but low


def test_engine_reports_once():
    engine = Engine(Config.load({"rules": {"underfit": {}}}), framework="torch")
    findings = [f for s in stream(lambda s: 2.3, 3000) for f in engine.evaluate(s)]
    assert [(f.rule, f.step, f.subject) for f in findings] == [("underfit", 600, None)]


def test_state_round_trips_through_json():
    samples = stream(noisy(lambda s: 2.3 if s < 1500 else 0.5, 0.02, seed=4), 3000)
    params = Underfit.Params(window=100, min_steps=500)
    ref = Underfit("underfit", params)
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = Underfit("underfit", params)
    head = [v for s in samples[:77] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state
    second = Underfit("underfit", params)
    second.state = state
    assert head + [v for s in samples[77:] for v in second.check(s)] == whole


def test_contract():
    assert all(n.stat in CATALOGUE for n in Underfit("underfit").needs())
    assert set(Underfit.frameworks) == {"torch", "keras", "xgboost"}
    assert all(f.description for f in Underfit.Params.model_fields.values())
    assert Underfit("underfit").check(Sample(10, stats={"val_loss": {None: 1.0}})) == []


def test_a_loss_pushed_far_above_its_start_is_not_underfit():
    # a GAN generator's loss: 0.7 at the start, up to ~2 as the discriminator learns, then level
    rule = Underfit("underfit")
    assert fired_steps(rule, stream(lambda s: 0.7 + 1.3 * (1 - math.exp(-s / 100)), 2000)) == []
    just_above = Underfit("underfit")  # a few % above the start (Adam's first steps): still stuck
    assert fired_steps(just_above, stream(lambda s: 2.30 * 1.05, 800)) == [600, 800]
