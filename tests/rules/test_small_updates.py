"""`small_updates` on scripted update-ratio streams (one sample every 10 steps)."""

import numpy as np

from tripwire.rules.small_updates import SmallUpdates
from tripwire.stats import Sample


def run(rule, ratios_per_sample):
    """Feed {param: ratio} dicts; return the (step, subject) of every fired verdict."""
    out = []
    for i, ratios in enumerate(ratios_per_sample):
        step = 10 * (i + 1)
        out += [(step, v.subject) for v in rule.check(Sample(step, stats={"update_ratio": ratios})) if v.fired]
    return out


def noisy(rng, center, n, spread=1.0):
    return center * np.exp(spread * rng.standard_normal(n))


def test_tiny_learning_rate_fires_after_patience_naming_param_step_and_lr():
    rng = np.random.default_rng(0)
    # Adam at LR 1e-9: ratio ~ lr / std(w), about 1e-9..3e-8
    stream = [{"fc1.weight": float(a), "fc2.weight": float(b)}
              for a, b in zip(noisy(rng, 1e-8, 6), noisy(rng, 2e-9, 6), strict=True)]
    rule = SmallUpdates("small_updates")
    out = run(rule, stream)
    assert out[:2] == [(30, "fc1.weight"), (30, "fc2.weight")] and len(out) == 8
    (v, _) = rule.check(Sample(70, stats={"update_ratio": {"fc1.weight": 1e-8, "fc2.weight": 1e-8}}))
    assert "fc1.weight" in v.message and "steps 10..70" in v.message and "7 samples" in v.message
    assert "learning rate" in v.suggestion and "1e-4..1e-3" in v.suggestion and v.threshold == 1e-6


def test_healthy_runs_stay_silent():
    rng = np.random.default_rng(1)
    # measured ranges: Adam 1e-4..1e-3 -> 2e-5..2e-3, SGD 1e-2..1e-1 -> 1e-4..2e-2, plain SGD 1e-3 -> 4e-6
    for center in (1e-3, 1e-4, 2e-5, 4e-6):
        stream = [{f"l{j}.weight": float(r) for j, r in enumerate(noisy(rng, center, 5, spread=0.7))}
                  for _ in range(100)]
        assert run(SmallUpdates("small_updates"), stream) == [], center


def test_a_single_dip_does_not_fire_and_resets_the_count():
    stream = [{"w": 1e-9}, {"w": 1e-9}, {"w": 1e-3}, {"w": 1e-9}, {"w": 1e-9}, {"w": 1e-3}]
    assert run(SmallUpdates("s"), stream) == []


def test_biases_are_skipped_unless_included():
    # a conv bias followed by BatchNorm: ~0 update under SGD, harmless
    stream = [{"conv.bias": 0.0, "conv.weight": 1e-3}] * 4
    assert run(SmallUpdates("s"), stream) == []
    assert {s for _, s in run(SmallUpdates("s", SmallUpdates.Params(include_biases=True)), stream)} == {"conv.bias"}


def test_non_finite_and_absent_ratios_are_not_evaluated():
    rule = SmallUpdates("s", SmallUpdates.Params(patience=2))
    # a zero-initialised bias has ||w_before|| = 0: the collector's ratio is Inf
    assert rule.check(Sample(10, stats={"update_ratio": {"w": float("inf")}})) == []
    assert rule.check(Sample(20, stats={"loss": {None: 1.0}})) == []
    assert rule.state["runs"] == {}


def test_ignore_patterns():
    stream = [{"frozen_ish.weight": 0.0, "fc.weight": 1e-3}] * 4
    assert run(SmallUpdates("s", SmallUpdates.Params(ignore=("frozen_ish.*",))), stream) == []


def test_a_converged_model_does_not_count_and_a_learning_one_does():
    """Once the loss is < 1% of its first value, tiny updates are the model at rest, not a fault."""
    def feed(rule, losses):
        fired = []
        for i, loss in enumerate(losses):
            sample = Sample(10 * (i + 1), stats={"update_ratio": {"embed.weight": 5e-7}, "loss": {None: loss}})
            fired += [sample.step for v in rule.check(sample) if v.fired]
        return fired

    assert feed(SmallUpdates("s"), [2.0, 0.5, 0.01, 0.005, 0.004, 0.004]) == []  # converged from the 4th
    assert feed(SmallUpdates("s"), [2.0, 1.9, 1.9, 1.8, 1.8, 1.8]) == [30, 40, 50, 60]  # stuck: tiny LR


def test_a_schedule_winding_down_does_not_count_but_a_tiny_rate_from_the_start_does():
    def feed(rule, lrs, per_lr=0.1):
        """Update ratios proportional to the learning rate (Adam: ratio ~ lr / rms(w))."""
        fired = []
        for i, lr in enumerate(lrs):
            stats = {"update_ratio": {"w": per_lr * lr}, "lr": {None: lr}, "loss": {None: 1.0}}
            sample = Sample(10 * (i + 1), stats=stats)
            fired += [sample.step for v in rule.check(sample) if v.fired]
        return fired

    cosine_end = [1e-3, 8e-4, 5e-4, 2e-4, 5e-5, 5e-6, 1e-6, 1e-7, 0.0]  # the ratio falls below 1e-6 at 5e-6
    assert feed(SmallUpdates("s"), cosine_end) == []
    assert feed(SmallUpdates("s", SmallUpdates.Params(lr_decayed_below=0)), cosine_end) == [80, 90]  # guard off
    assert feed(SmallUpdates("s"), [1e-9] * 5) == [30, 40, 50]  # never larger: a too-small learning rate
    warmup = [0.0, 1e-6, 2e-6, 3e-6, 4e-6, 1e-3, 1e-3]  # a long linear warm-up from 0 (SGD-like ratios)
    assert feed(SmallUpdates("s"), warmup, per_lr=1e-2) == []
    assert feed(SmallUpdates("s"), [4e-6] * 5, per_lr=1e-2) == [30, 40, 50]  # the same rates, not rising
