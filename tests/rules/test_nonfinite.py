"""`nonfinite` on scripted flag streams, alone and through the engine."""

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.nonfinite import Nonfinite
from tripwire.stats import Sample


def flags(step, **values):
    return Sample(step, stats={k: {None: float(v)} for k, v in values.items()})


def fired(rule, sample):
    return [v.subject for v in rule.check(sample) if v.fired]


def test_each_source_fires_under_its_own_subject():
    rule = Nonfinite("nonfinite")
    assert fired(rule, flags(10, loss_nonfinite=2, grad_nonfinite=0, weight_nonfinite=0)) == ["loss"]
    assert fired(rule, flags(20, grad_nonfinite=1)) == ["gradients"]
    (v,) = rule.check(flags(30, weight_nonfinite=1))
    assert v.fired and v.subject == "weights" and "step 30" in v.message and "weights" in v.message
    assert "learning rate" in v.suggestion and "clip" in v.suggestion


def test_healthy_flags_clear_and_absent_series_say_nothing():
    rule = Nonfinite("nonfinite")
    assert [(v.subject, v.fired) for v in rule.check(flags(10, loss_nonfinite=0, grad_nonfinite=0))] == [
        ("loss", False), ("gradients", False)]
    assert rule.check(Sample(20, stats={"loss": {None: 0.5}})) == []


def test_amp_loss_scale_skip_excuses_the_gradients_only():
    rule = Nonfinite("nonfinite")
    assert fired(rule, flags(10, grad_nonfinite=1, amp_skipped=1)) == []
    assert fired(rule, flags(20, grad_nonfinite=1, loss_nonfinite=1, amp_skipped=1)) == ["loss"]


def test_engine_reports_a_persistent_nan_once_and_stops():
    engine = Engine(Config.load({"rules": {"nonfinite": {}}}), framework="torch")
    assert engine.actions["nonfinite"] == ("alert", "stop")
    findings = [f for step in range(10, 60, 10) for f in engine.evaluate(flags(step, loss_nonfinite=1))]
    assert [(f.step, f.subject, f.severity) for f in findings] == [(10, "loss", "error")]
    for step in range(60, 160, 10):  # recovers for rearm_after (10) samples: re-arms
        assert engine.evaluate(flags(step, loss_nonfinite=0)) == []
    assert [f.step for f in engine.evaluate(flags(160, loss_nonfinite=1))] == [160]
