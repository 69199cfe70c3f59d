"""`all_zero` on scripted zero-share streams for weights, gradients and activations."""

import pytest

from tripwire.rules.all_zero import AllZero
from tripwire.stats import Sample


def run(rule, key, stream):
    out = []
    for i, values in enumerate(stream):
        step = 10 * (i + 1)
        out += [(step, v.subject) for v in rule.check(Sample(step, stats={key: values})) if v.fired]
    return out


@pytest.mark.parametrize("on,key", [("weights", "weight_zero_frac"), ("gradients", "grad_zero_frac"),
                                    ("activations", "act_zero_frac")])
def test_on_selects_the_statistic(on, key):
    rule = AllZero("all_zero", AllZero.Params(on=on))
    assert [n.key for n in rule.needs()] == [key]
    assert run(rule, key, [{"x": 1.0}] * 3) == [(30, "x")]
    (v,) = rule.check(Sample(40, stats={key: {"x": 1.0}}))
    assert on in v.message and "x" in v.message and "steps 10..40" in v.message and v.suggestion


def test_zero_initialised_bias_that_then_trains_stays_silent():
    # share of zeros: 1.0 at step 0 only, then the optimizer moves it
    stream = [{"fc.bias": 1.0, "fc.weight": 0.0}] + [{"fc.bias": 0.0, "fc.weight": 0.0}] * 20
    assert run(AllZero("z"), "weight_zero_frac", stream) == []


def test_gradient_cut_off_layer_fires_and_a_healthy_relu_layer_does_not():
    # a ReLU layer's output is ~half zeros when healthy; a detached branch has all-zero gradients
    rule = AllZero("z", AllZero.Params(on="gradients"))
    stream = [{"aux.weight": 1.0, "fc.weight": 0.02}] * 5
    assert {s for _, s in run(rule, "grad_zero_frac", stream)} == {"aux.weight"}
    acts = AllZero("a", AllZero.Params(on="activations"))
    assert run(acts, "act_zero_frac", [{"net.1": 0.47 + 0.01 * (i % 5)} for i in range(50)]) == []


def test_lower_threshold_and_clearing():
    rule = AllZero("z", AllZero.Params(threshold=0.9, patience=1))
    assert rule.check(Sample(10, stats={"weight_zero_frac": {"w": 0.95}}))[0].fired
    assert not rule.check(Sample(20, stats={"weight_zero_frac": {"w": 0.5}}))[0].fired


def test_invalid_on_is_rejected():
    with pytest.raises(ValueError):
        AllZero.Params(on="biases")
