"""`class_imbalance` on scripted per-sample label counts."""

import json

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.class_imbalance import ClassImbalance
from tripwire.stats import CATALOGUE, Sample


def batches(probs, n_samples, batch=32, seed=0):
    """One sample per batch of `batch` labels drawn with class probabilities `probs`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_samples):
        counts = rng.multinomial(batch, probs)
        out.append(Sample(10 * (i + 1), stats={"label_count": {str(c): float(n) for c, n in enumerate(counts)}}))
    return out


def test_990_to_10_fires_at_once():
    # SageMaker's test: 990 zeros and 10 ones in one step
    (v,) = ClassImbalance("ci").check(Sample(3, stats={"label_count": {"0": 990.0, "1": 10.0}}))
    assert v.fired and v.value == pytest.approx(99.0) and v.threshold == 10.0
    assert v.evidence["counts"] == {"0": 990.0, "1": 10.0}
    assert "class 0 has 990" in v.message and "class 1 only 10" in v.message
    assert "class_weight" in v.suggestion


def test_waits_for_samples_labels():
    rule = ClassImbalance("ci")
    assert rule.check(Sample(1, stats={"label_count": {"0": 396.0, "1": 4.0}})) == []
    (v,) = rule.check(Sample(2, stats={"label_count": {"0": 99.0, "1": 1.0}}))
    assert v.fired and rule.state["counts"] == {"0": 495.0, "1": 5.0}


def test_counts_accumulate_over_batches():
    probs = [0.9, 0.05, 0.05]  # 18x between the majority and each minority class
    fired = [s.step for s in batches(probs, 40) for v in ClassImbalance("ci").check(s) if v.fired]
    assert fired == []  # a fresh rule per sample never reaches 500 labels
    rule = ClassImbalance("ci")
    fired = [s.step for s in batches(probs, 40) for v in rule.check(s) if v.fired]
    assert fired and fired[0] == 160  # 16 batches of 32 = 512 labels
    assert sum(rule.state["counts"].values()) == 40 * 32


@pytest.mark.parametrize("probs", [[0.5, 0.5], [0.1] * 10, [0.6, 0.3, 0.1], [0.75, 0.25]])
def test_balanced_and_mildly_imbalanced_stay_silent(probs):
    rule = ClassImbalance("ci")
    verdicts = [v for s in batches(probs, 200, seed=1) for v in rule.check(s)]
    assert verdicts and not any(v.fired for v in verdicts)


def test_a_class_reported_with_zero_labels_fires():
    rule = ClassImbalance("ci")
    (v,) = rule.check(Sample(5, stats={"label_count": {"0": 300.0, "1": 300.0, "2": 0.0}}))
    assert v.fired and v.evidence["minority"] == "2" and v.value == float("inf")


def test_engine_reports_once_and_rearms_when_balance_returns():
    engine = Engine(Config.load({"rules": {"class_imbalance": {"min_samples": 100}}}), framework="xgboost")
    stream = ([Sample(i, stats={"label_count": {"0": 60.0, "1": 1.0}}) for i in range(1, 6)]
              + [Sample(i, stats={"label_count": {"0": 1.0, "1": 100.0}}) for i in range(6, 16)]
              + [Sample(i, stats={"label_count": {"0": 1000.0}}) for i in range(16, 30)])
    findings = [f for s in stream for f in engine.evaluate(s)]
    # 120:2 at step 2; 310:1005 by step 15 (cleared); 0 passes 10 x 1005 at step 25 (310 + 10 x 1000)
    assert [(f.step, f.evidence["majority"]) for f in findings] == [(2, "0"), (25, "0")]


def test_absent_series_and_single_class():
    rule = ClassImbalance("ci")
    assert rule.check(Sample(1, stats={"loss": {None: 1.0}})) == []
    assert rule.check(Sample(2, stats={"label_count": {"0": 1000.0}})) == []  # one class: no ratio yet


def test_state_round_trips_through_json():
    samples = batches([0.95, 0.05], 30, seed=2) + batches([0.3, 0.7], 60, seed=3)
    ref = ClassImbalance("ci")
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = ClassImbalance("ci")
    head = [v for s in samples[:23] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state
    second = ClassImbalance("ci")
    second.state = state
    assert head + [v for s in samples[23:] for v in second.check(s)] == whole


def test_contract():
    assert all(n.stat in CATALOGUE for n in ClassImbalance("ci").needs())
    assert set(ClassImbalance.frameworks) == {"torch", "keras", "xgboost"}
    assert all(f.description for f in ClassImbalance.Params.model_fields.values())
