"""`loss_not_decreasing` on scripted loss streams: one sample every 10 steps."""

import json
import math

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.loss_not_decreasing import LossNotDecreasing
from tripwire.stats import CATALOGUE, Sample

EVERY = 10


def stream(loss_at, steps):
    return [Sample(s, stats={"loss": {None: float(loss_at(s))}}) for s in range(EVERY, steps + 1, EVERY)]


def fired_steps(rule, samples):
    return [s.step for s in samples for v in rule.check(s) if v.fired]


def noisy(curve, noise, seed):
    rng = np.random.default_rng(seed)
    return lambda s: curve(s) * (1 + noise * rng.standard_normal())


def test_flat_loss_fires_after_patience_windows():
    # windows of 200 steps after warmup 100 close at 300, 500, 700, 900: misses at 500, 700, 900
    rule = LossNotDecreasing("lnd")
    steps = fired_steps(rule, stream(lambda s: 0.7, 1000))
    assert steps == [900]


def test_rising_loss_fires_and_says_so():
    rule = LossNotDecreasing("lnd")
    verdicts = [v for s in stream(lambda s: 0.5 + s / 1000, 1000) for v in rule.check(s) if v.fired]
    assert verdicts and "rose" in verdicts[0].message
    assert verdicts[0].value < 0  # a negative drop
    assert verdicts[0].evidence["window_mean"] > verdicts[0].evidence["previous_mean"]


def test_noisy_flat_loss_fires():
    rule = LossNotDecreasing("lnd")
    assert fired_steps(rule, stream(noisy(lambda s: 1.2, 0.1, seed=1), 4000))


@pytest.mark.parametrize("seed", range(5))
def test_noisy_decreasing_loss_stays_silent(seed):
    # exponential decay with 30% multiplicative noise on every sample
    rule = LossNotDecreasing("lnd")
    assert fired_steps(rule, stream(noisy(lambda s: 2.5 * math.exp(-s / 1000), 0.3, seed), 3000)) == []


def test_slow_but_steady_decrease_stays_silent():
    rule = LossNotDecreasing("lnd")  # 2% per 200 steps is progress (min_delta 1%)
    assert fired_steps(rule, stream(lambda s: 2.0 * 0.98 ** (s / 200), 4000)) == []


def test_rise_during_warmup_is_ignored():
    rule = LossNotDecreasing("lnd", LossNotDecreasing.Params(warmup=600, patience=2))
    curve = lambda s: 1.0 + s / 300 if s <= 600 else 3.0 * math.exp(-(s - 600) / 500)
    assert fired_steps(rule, stream(curve, 2000)) == []
    rule = LossNotDecreasing("lnd", LossNotDecreasing.Params(warmup=0, patience=2))
    assert fired_steps(rule, stream(curve, 2000)) == [600]  # the same stream without the warm-up


def test_engine_reports_once_and_rearms_after_progress():
    engine = Engine(Config.load({"rules": {"loss_not_decreasing": {"window": 100, "patience": 2, "rearm_after": 1}}}),
                    framework="xgboost")
    findings = [f for s in stream(lambda s: 1.0 if s <= 1500 else 0.5, 3000) for f in engine.evaluate(s)]
    # flat from the start: misses at 300, 400; the drop clears at 1600; flat again: misses at 1700, 1800
    assert [f.step for f in findings] == [400, 1800]
    assert findings[0].kind == "loss_not_decreasing" and findings[0].subject is None
    assert "stayed flat" in findings[0].message and "raise eta" in findings[0].suggestion  # XGBoost advice


def test_missing_and_nonfinite_loss_are_skipped():
    rule = LossNotDecreasing("lnd", LossNotDecreasing.Params(window=20, patience=1, warmup=0))
    assert rule.check(Sample(10, stats={"val_loss": {None: 1.0}})) == []
    samples = stream(lambda s: 1.0, 100)
    samples[3] = Sample(40, stats={"loss": {None: float("nan")}})
    # the NaN at step 40 leaves the window (20, 40] open until step 50 closes it
    assert fired_steps(rule, samples) == [50, 60, 80, 100]
    assert math.isfinite(rule.state["window"]["sum"])


def test_state_round_trips_through_json():
    samples = stream(noisy(lambda s: 1.0 if s < 1200 else 1.0 - (s - 1200) / 4000, 0.05, seed=3), 4000)
    params = LossNotDecreasing.Params(window=100, patience=2)
    ref = LossNotDecreasing("lnd", params)
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = LossNotDecreasing("lnd", params)
    head = [v for s in samples[:173] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state  # plain JSON types only: no tuples, no non-str keys
    second = LossNotDecreasing("lnd", params)
    second.state = state
    assert head + [v for s in samples[173:] for v in second.check(s)] == whole


def test_contract():
    rule = LossNotDecreasing("lnd")
    assert all(n.stat in CATALOGUE for n in rule.needs())
    assert set(LossNotDecreasing.frameworks) == {"torch", "keras", "xgboost"}
    assert all(f.description for f in LossNotDecreasing.Params.model_fields.values())
