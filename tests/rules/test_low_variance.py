"""`low_variance` on scripted variance streams."""

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.errors import ConfigError
from tripwire.rules.low_variance import LowVariance
from tripwire.stats import Sample


def run(rule, key, stream):
    out = []
    for i, values in enumerate(stream):
        step = 10 * (i + 1)
        out += [(step, v.subject) for v in rule.check(Sample(step, stats={key: values})) if v.fired]
    return out


def test_collapsed_weights_fire_and_healthy_ones_do_not():
    rng = np.random.default_rng(0)
    # healthy weight variances sit around 1/fan_in; "collapsed" has every element equal
    stream = [{"fc1.weight": float(1 / 20 * np.exp(0.1 * rng.standard_normal())), "fc2.weight": 0.0}
              for _ in range(10)]
    rule = LowVariance("low_variance")
    out = run(rule, "weight_var", stream)
    assert out[0] == (30, "fc2.weight") and {s for _, s in out} == {"fc2.weight"}
    (v, _) = rule.check(Sample(110, stats={"weight_var": {"fc2.weight": 0.0, "fc1.weight": 0.05}}))
    assert v.fired and "fc2.weight" in v.message and "min" in v.message and v.threshold == 1e-10


def test_max_limit_on_activations():
    rule = LowVariance("wide_acts", LowVariance.Params(on="activations", min=None, max=100.0, patience=2))
    assert [n.key for n in rule.needs()] == ["act_var"]
    stream = [{"net.1": 1.0}, {"net.1": 500.0}, {"net.1": 800.0}]
    assert run(rule, "act_var", stream) == [(30, "net.1")]
    (v,) = rule.check(Sample(40, stats={"act_var": {"net.1": 900.0}}))
    assert v.threshold == 100.0 and "max" in v.message


def test_gradients_statistic_and_wording():
    rule = LowVariance("g", LowVariance.Params(on="gradients", min=1e-12, patience=1))
    (v,) = rule.check(Sample(10, stats={"grad_var": {"fc.weight": 1e-15}}))
    assert v.fired and "gradient" in v.message


def test_limits_must_be_consistent():
    with pytest.raises(ValueError, match="below max"):
        LowVariance.Params(min=1.0, max=0.5)
    with pytest.raises(ValueError, match="set min, max"):
        LowVariance.Params(min=None)


def test_configured_from_a_dict_under_its_own_name_and_not_in_the_default_set():
    engine = Engine(Config.load({"rules": {"tiny_weights": {"type": "low_variance", "on": "weights",
                                                            "min": 1e-6}}}))
    assert engine.rules["tiny_weights"].params.min == 1e-6
    assert "low_variance" not in Engine(Config.load(None)).rules


def test_gradients_need_explicit_limits():
    with pytest.raises(ConfigError, match=r"rules\.g.*set min \(or max\) from a healthy run"):
        Config.load({"rules": {"g": {"type": "low_variance", "on": "gradients"}}})
    assert Config.load({"rules": {"g": {"type": "low_variance", "on": "gradients", "min": 1e-16}}})
    assert LowVariance.Params(on="weights").min == 1e-10  # weights and activations keep the default


def test_zero_initialized_biases_and_norm_shifts_are_left_out_unless_included():
    stream = [{"fc.weight": 0.02, "fc.bias": 0.0, "bn.weight": 0.0, "bn.bias": 0.0}] * 3
    shapes = {"param_ndim": {"fc.weight": 2.0, "fc.bias": 1.0, "bn.weight": 1.0, "bn.bias": 1.0}}
    rule = LowVariance("v")
    fired = [v.subject for i, stats in enumerate(stream)
             for v in rule.check(Sample(10 * i, stats={"weight_var": stats, **(shapes if i == 0 else {})})) if v.fired]
    assert fired == []  # bn.weight is 1-D: known from param_ndim, not from its name
    rule = LowVariance("v", LowVariance.Params(include_biases=True))
    fired = [v.subject for i, stats in enumerate(stream)
             for v in rule.check(Sample(10 * i, stats={"weight_var": stats, **(shapes if i == 0 else {})})) if v.fired]
    assert sorted(fired) == ["bn.bias", "bn.weight", "fc.bias"]
