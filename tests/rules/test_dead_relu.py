"""`dead_relu`: scripted streams, and the defaults on real ReLU activations."""

import numpy as np
import pytest

from tripwire.rules.dead_relu import DeadRelu
from tripwire.stats import Need, Sample

KEY = Need("act_dead_frac", (("inactive_below", 0.01),)).key


def run(rule, stream, key=KEY):
    out = []
    for i, values in enumerate(stream):
        step = 10 * (i + 1)
        out += [(step, v.subject) for v in rule.check(Sample(step, stats={key: values})) if v.fired]
    return out


def test_layers_dying_after_a_large_step_fire_after_patience():
    stream = [{"fc1.act": 0.02, "fc2.act": 0.01}] * 12 + [{"fc1.act": 0.9, "fc2.act": 0.85}] * 3
    rule = DeadRelu("dead_relu")
    out = run(rule, stream)
    assert out[:2] == [(140, "fc1.act"), (140, "fc2.act")] and len(out) == 4
    (v, _) = rule.check(Sample(160, stats={KEY: {"fc1.act": 0.9, "fc2.act": 0.85}}))
    assert "fc1.act" in v.message and "90%" in v.message and "steps 130..160" in v.message
    assert "LeakyReLU" in v.suggestion and "learning rate" in v.suggestion and v.value == 0.9


def test_healthy_sparse_layers_stay_silent():
    rng = np.random.default_rng(0)
    # small dead shares with an occasional unlucky batch above the limit
    stream = [{"fc1.act": float(rng.uniform(0, 0.1)), "fc2.act": 0.6 if i % 7 == 0 else 0.05} for i in range(200)]
    assert run(DeadRelu("dead_relu"), stream) == []


def test_threshold_inactivity_is_part_of_the_statistic_key():
    rule = DeadRelu("d", DeadRelu.Params(threshold_inactivity=0.05, patience=1))
    assert rule.needs()[0].key == "act_dead_frac[inactive_below=0.05]"
    assert run(rule, [{"a": 1.0}]) == []
    assert run(rule, [{"a": 1.0}], key=rule.needs()[0].key) == [(10, "a")]


def test_defaults_on_real_relu_activations():
    """Reference statistic on a 20-64 layer: healthy init is silent, a bias of -10 kills the layer."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = torch.randn(32, 20)
    healthy, dead = torch.nn.Linear(20, 64), torch.nn.Linear(20, 64)
    torch.nn.init.constant_(dead.bias, -10.0)
    with torch.no_grad():
        ys = {"healthy": torch.relu(healthy(x)), "dead": torch.relu(dead(x))}
    assert float((ys["healthy"] == 0).float().mean()) > 0.3  # most outputs zero, yet not dead
    fracs = {k: float(((y > 0).float().mean(0) < 0.01).float().mean()) for k, y in ys.items()}
    assert run(DeadRelu("dead_relu"), [fracs] * 2) == [(20, "dead")]


def test_yaml_config_and_engine_report_the_dead_layers_once():
    from tripwire.config import Config
    from tripwire.engine import Engine

    config = Config.load("rules:\n  dead_relu: {threshold_layer: 0.3, ignore: ['head.*']}\n")
    engine = Engine(config, framework="torch")
    assert engine.rules["dead_relu"].params.ignore == ("head.*",)
    stream = [{"fc1.act": 0.8, "fc2.act": 0.4, "head.act": 1.0}] * 6
    samples = [Sample(10 * (i + 1), stats={KEY: values}) for i, values in enumerate(stream)]
    findings = [f for s in samples for f in engine.evaluate(s)]
    # both layers fired in the same sample: one finding naming both, never repeated
    assert [(f.step, f.subject) for f in findings] == [(20, "fc1.act, fc2.act")]
    assert findings[0].evidence["subjects"] == {"fc1.act": 0.8, "fc2.act": 0.4}
    assert "dead_relu" not in Engine(Config.load(None), framework="xgboost").rules


def test_a_share_just_over_the_limit_does_not_print_as_the_limit():
    rule = DeadRelu("dead_relu", DeadRelu.Params(patience=1))
    (v,) = [v for v in rule.check(Sample(10, stats={KEY: {"fc1.act": 0.504}})) if v.fired]
    assert v.message.startswith("50.4% of the units") and "limit 50%)" in v.message
