"""`tanh_saturation` and `sigmoid_saturation`: scripted streams, and the defaults on real activations."""

import pytest

from tripwire.rules.saturation import SigmoidSaturation, TanhSaturation
from tripwire.stats import Sample

RULES = [(TanhSaturation, "act_tanh_sat_frac", "tanh"), (SigmoidSaturation, "act_sigmoid_sat_frac", "sigmoid")]


def run(rule, stream):
    key = rule.needs()[0].key
    out = []
    for i, values in enumerate(stream):
        step = 10 * (i + 1)
        out += [(step, v.subject) for v in rule.check(Sample(step, stats={key: values})) if v.fired]
    return out


@pytest.mark.parametrize("cls,stat,function", RULES)
def test_saturated_layer_fires_after_patience(cls, stat, function):
    rule = cls(cls.kind)
    assert rule.needs()[0].key == f"{stat}[level=0.99,share=0.9]"
    assert run(rule, [{"net.1": 0.95, "net.3": 0.1}] * 3) == [(20, "net.1"), (30, "net.1")]
    (v, _) = rule.check(Sample(40, stats={rule.needs()[0].key: {"net.1": 0.95, "net.3": 0.1}}))
    assert function in v.message and "net.1" in v.message and "95%" in v.message and "steps 10..40" in v.message
    assert "normalize the inputs" in v.suggestion and v.threshold == 0.5


@pytest.mark.parametrize("cls,stat,function", RULES)
def test_healthy_layers_and_single_spikes_stay_silent(cls, stat, function):
    stream = [{"net.1": 0.02 * (i % 4), "net.3": 0.6 if i % 10 == 0 else 0.1} for i in range(100)]
    assert run(cls(cls.kind), stream) == []


def test_the_two_rules_read_their_own_series():
    tanh, sigmoid = TanhSaturation("t"), SigmoidSaturation("s")
    sample = Sample(10, stats={tanh.needs()[0].key: {"a": 1.0}})
    assert tanh.check(sample) and sigmoid.check(sample) == []


def _sat_frac(y, level, share, sigmoid):
    hit = ((y >= level) | (y <= 1 - level)) if sigmoid else (y.abs() >= level)
    return float((hit.float().mean(0) >= share).float().mean())


@pytest.mark.parametrize("cls,sigmoid", [(TanhSaturation, False), (SigmoidSaturation, True)])
def test_defaults_on_real_activations(cls, sigmoid):
    """Reference statistic on a 20-64 layer: unnormalized inputs (x100) fire, normalized ones do not."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(20, 64), torch.randn(32, 20)
    act = torch.sigmoid if sigmoid else torch.tanh
    rule = cls(cls.kind)
    p = rule.params
    with torch.no_grad():
        healthy = _sat_frac(act(layer(x)), p.level, p.share, sigmoid)
        faulty = _sat_frac(act(layer(100 * x)), p.level, p.share, sigmoid)
    assert run(rule, [{"healthy": healthy, "raw_inputs": faulty}] * 2) == [(20, "raw_inputs")]
