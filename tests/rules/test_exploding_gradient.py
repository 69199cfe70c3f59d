"""`exploding_gradient` on scripted global-gradient-norm streams."""

import numpy as np
import pytest

from tripwire.rules.exploding_gradient import ExplodingGradient
from tripwire.stats import Sample


def run(rule, norms):
    """Feed global norms (one sample every 10 steps); return the steps of fired verdicts."""
    out = []
    for i, g in enumerate(norms):
        step = 10 * (i + 1)
        out += [step for v in rule.check(Sample(step, stats={"grad_global_norm": {None: float(g)}})) if v.fired]
    return out


def test_norm_growing_geometrically_fires_at_the_jump():
    norms = [1.0, 0.9, 1.1, 1.0, 0.95, 1.05, 3.0, 30.0, 300.0, 3000.0]
    rule = ExplodingGradient("exploding_gradient")
    assert run(rule, norms) == [80, 90, 100]
    (v,) = rule.check(Sample(110, stats={"grad_global_norm": {None: 3e4}}))
    assert v.fired and v.threshold == 1e4 and "step 110" in v.message and "max_norm" in v.message
    assert "clip" in v.suggestion and v.evidence["running_median"] == pytest.approx(1.0, rel=0.1)


def test_relative_message_states_the_multiple_and_the_median():
    rule = ExplodingGradient("e")
    run(rule, [2.0] * 5)
    (v,) = rule.check(Sample(60, stats={"grad_global_norm": {None: 50.0}}))
    assert v.fired and v.value == 50.0 and v.threshold == 20.0 and "25x" in v.message and "2" in v.message


def test_absolute_limit_applies_before_warmup():
    assert run(ExplodingGradient("e"), [2e4]) == [10]


def test_healthy_noisy_runs_stay_silent():
    rng = np.random.default_rng(0)
    # decaying norm with heavy-tailed noise: spikes up to ~5x the running median, as measured
    # on small-batch MLP/CNN/transformer runs
    steps = np.arange(500)
    norms = (3.0 * np.exp(-steps / 150) + 0.5) * np.exp(0.45 * rng.standard_normal(500))
    assert max(norms[k] / np.median(norms[max(0, k - 20):k]) for k in range(5, 500)) > 3
    assert run(ExplodingGradient("e"), norms) == []


def test_exploded_values_stay_out_of_the_history():
    rule = ExplodingGradient("e")
    out = run(rule, [1.0] * 10 + [100.0] * 30)
    assert out == list(range(110, 410, 10))  # still fires at the end: the median did not learn 100
    assert max(rule.state["history"]) == 1.0 and len(rule.state["history"]) == 10


def test_history_is_bounded():
    rule = ExplodingGradient("e", ExplodingGradient.Params(history=8))
    run(rule, np.linspace(1, 2, 100))
    assert len(rule.state["history"]) == 8


def test_patience_needs_consecutive_samples():
    rule = ExplodingGradient("e", ExplodingGradient.Params(patience=2))
    assert run(rule, [1.0] * 6 + [50.0, 1.0, 50.0, 60.0]) == [100]


def test_non_finite_norms_are_left_to_nonfinite():
    rule = ExplodingGradient("e")
    assert rule.check(Sample(10, stats={"grad_global_norm": {None: float("inf")}})) == []
    assert rule.check(Sample(20, stats={})) == [] and rule.state["history"] == []


def test_all_zero_history_does_not_make_every_norm_a_jump():
    assert run(ExplodingGradient("e"), [0.0] * 6 + [0.5]) == []


def test_spikes_of_a_converged_model_are_not_explosions_but_max_norm_still_is():
    """At rest, one batch with a hard example lifts the norm 10-30x above a tiny median."""
    rng = np.random.default_rng(1)
    norms = list(0.005 * np.exp(0.3 * rng.standard_normal(30))) + [0.15, 0.005, 2e4]
    losses = [2.0 * 0.8 ** i for i in range(len(norms))]  # below 1% of the first from sample 21 on

    def feed(rule):
        out = []
        for i, (g, loss) in enumerate(zip(norms, losses)):
            sample = Sample(10 * (i + 1), stats={"grad_global_norm": {None: float(g)}, "loss": {None: loss}})
            out += [v.value for v in rule.check(sample) if v.fired]
        return out

    assert feed(ExplodingGradient("e")) == [2e4]
    learning = [0.005] * 30 + [0.15]  # the same jump while the loss is still high fires
    rule = ExplodingGradient("e")
    fired = [v.fired for i, g in enumerate(learning)
             for v in rule.check(Sample(10 * (i + 1), stats={"grad_global_norm": {None: g}, "loss": {None: 2.0}}))]
    assert fired[-1] and not any(fired[:-1])


def run_with_loss(rule, norms, losses):
    out = []
    for i, (g, loss) in enumerate(zip(norms, losses)):
        sample = Sample(10 * (i + 1), stats={"grad_global_norm": {None: float(g)}, "loss": {None: float(loss)}})
        out += [10 * (i + 1) for v in rule.check(sample) if v.fired]
    return out


def test_a_jump_while_the_loss_falls_is_learning_and_joins_the_history():
    # a model leaving its initial plateau: the norm grows 14x as the loss starts to fall
    norms = [0.1] * 8 + [1.4, 1.6, 1.5, 1.3, 1.2]
    losses = [2.30] * 8 + [2.2, 2.0, 1.7, 1.4, 1.2]
    rule = ExplodingGradient("e")
    assert run_with_loss(rule, norms, losses) == []
    assert 1.4 in rule.state["history"]


def test_the_same_jump_with_a_flat_or_rising_loss_fires():
    norms = [0.1] * 8 + [1.4, 1.6]
    assert run_with_loss(ExplodingGradient("e"), norms, [2.30] * 8 + [2.30, 2.4]) == [90, 100]
    assert run_with_loss(ExplodingGradient("e"), norms, [2.30] * 8 + [2.5, 3.1]) == [90, 100]


def test_max_norm_fires_even_while_the_loss_falls():
    assert run_with_loss(ExplodingGradient("e"), [1.0] * 6 + [2e4], [2.0] * 6 + [1.0]) == [70]
