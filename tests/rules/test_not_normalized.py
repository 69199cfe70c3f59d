"""`not_normalized` on per-feature sums computed from synthetic input batches."""

import json
import re

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.errors import ConfigError
from tripwire.rules.not_normalized import NotNormalized
from tripwire.stats import CATALOGUE, Sample


def stream(make, n_batches=20, batch=64, seed=0, start=0):
    """One sample per batch; `make(rng, batch)` returns {feature: values}. Sums as a collector computes them."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        cols = {k: np.asarray(v, dtype=np.float64) for k, v in make(rng, batch).items()}
        out.append(Sample(start + 10 * (i + 1), stats={
            "input_count": {k: float(v.size) for k, v in cols.items()},
            "input_sum": {k: float(v.sum()) for k, v in cols.items()},
            "input_sumsq": {k: float((v * v).sum()) for k, v in cols.items()},
            "input_min": {k: float(v.min()) for k, v in cols.items()},
            "input_max": {k: float(v.max()) for k, v in cols.items()},
        }))
    return out


def verdicts(samples, /, **params):
    rule = NotNormalized("nn", NotNormalized.Params(**params))
    return [v for s in samples for v in rule.check(s)]


def fired(samples, /, **params):
    return [v for v in verdicts(samples, **params) if v.fired]


HEALTHY = {
    "standardized": lambda rng, n: {f"x{i}": rng.standard_normal(n) * rng.uniform(0.5, 2) for i in range(5)},
    "images_0_1": lambda rng, n: {f"c{c}": rng.beta(2, 3, size=n * 64) for c in range(3)},
    "scaled_minus1_1": lambda rng, n: {"a": rng.uniform(-1, 1, n), "b": np.tanh(3 * rng.standard_normal(n))},
    "imagenet_normalized": lambda rng, n: {f"c{c}": (rng.uniform(0, 1, n * 64) - 0.45) / 0.225 for c in range(3)},
    "one_hot_and_binary": lambda rng, n: {**{f"cat={k}": (rng.integers(0, 20, n) == k) * 1.0 for k in range(20)},
                                          "rare_flag": (rng.uniform(size=n) < 0.01) * 1.0},
    "small_counts": lambda rng, n: {"children": rng.poisson(1.5, n), "rooms": rng.poisson(2.5, n)},
}


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_normalized_or_scaled_inputs_stay_silent(name):
    out = verdicts(stream(HEALTHY[name]))
    assert out and not any(v.fired for v in out)


def test_raw_prices_fire_and_are_named():
    make = lambda rng, n: {"price": rng.normal(1e5, 3e4, n), "x": rng.standard_normal(n)}
    (v, *_) = fired(stream(make))
    assert v.subject is None and v.evidence["features_off"] == 1
    # value and threshold are the worst feature's broken limit, as the message says
    assert v.value == pytest.approx(1e5, rel=0.05) and v.threshold == 3.0
    assert f"the worst, price, has |mean| {v.value:.3g} > 3 " in v.message
    assert [f["feature"] for f in v.evidence["features"]] == ["price"]
    assert v.evidence["features"][0]["mean"] == pytest.approx(1e5, rel=0.05)
    assert re.search(r"price \(mean 9\.\d+e\+04, std 2\.\d+e\+04\)", v.message)
    assert "StandardScaler" in v.suggestion


def test_a_too_narrow_feature_is_judged_by_the_lower_std_limit():
    make = lambda rng, n: {"id": 5.0 + 1e-4 * rng.standard_normal(n), "x": rng.standard_normal(n) * 3}
    (v, *_) = fired(stream(make))
    assert (v.evidence["worst"]["quantity"], v.threshold) == ("std", 0.01) and v.value < 0.01
    assert f"has std {v.value:.3g} < 0.01 " in v.message


def test_mixed_scales_fire_on_the_wide_feature_only():
    make = lambda rng, n: {"wide": rng.normal(0, 1000, n), "unit": rng.standard_normal(n)}
    (v, *_) = fired(stream(make))
    assert [f["feature"] for f in v.evidence["features"]] == ["wide"]
    assert v.evidence["features"][0]["std"] == pytest.approx(1000, rel=0.1)


def test_raw_pixels_and_ages_fire():
    pixels = lambda rng, n: {f"c{c}": rng.integers(0, 256, n * 64) for c in range(3)}
    assert fired(stream(pixels))
    ages = lambda rng, n: {"age": rng.normal(40, 12, n), "income": rng.lognormal(10, 1, n)}
    (v, *_) = fired(stream(ages))
    assert {f["feature"] for f in v.evidence["features"]} == {"age", "income"}
    assert v.evidence["features"][0]["feature"] == "income"  # worst first


def test_waits_for_samples_values():
    make = lambda rng, n: {"price": rng.normal(1e5, 3e4, n)}
    samples = stream(make, n_batches=10, batch=64)
    assert [s.step for s in samples for v in NotNormalized("nn").check(s)] == []  # a fresh rule: 64 rows
    out = verdicts(samples, min_samples=500)
    assert [v.fired for v in out] == [True, True, True]  # 8 x 64 = 512 rows at the 8th of 10 batches
    assert verdicts(samples, min_samples=1000) == []


def test_limits_are_parameters():
    make = lambda rng, n: {"rating": rng.uniform(1, 10, n)}
    assert fired(stream(make))
    assert not fired(stream(make), threshold_mean=6.0)
    assert fired(stream(make), threshold_mean=6.0, std_range=(0.01, 2.0))
    assert not fired(stream(make), bound=10.0)


def test_std_range_must_be_ordered():
    with pytest.raises(ValueError, match="low < high"):
        NotNormalized.Params(std_range=(10.0, 1.0))
    with pytest.raises(ConfigError, match=r"rules\.not_normalized"):
        Config.load({"rules": {"not_normalized": {"std_range": [10, 1]}}})
    assert Config.load({"rules": {"not_normalized": {"std_range": [0.1, 5]}}}).rules["not_normalized"].params


def test_nonfinite_batches_do_not_poison_the_sums():
    make = lambda rng, n: {"x": rng.standard_normal(n)}
    samples = stream(make)
    samples[2].stats["input_sum"]["x"] = float("nan")
    samples[2].stats["input_max"]["x"] = float("inf")
    rule = NotNormalized("nn")
    out = [v for s in samples for v in rule.check(s)]
    assert out and not any(v.fired for v in out)
    x = rule.state["features"].index("x")
    assert np.isfinite(rule.state["sum"][x]) and np.isfinite(rule.state["max"][x])


def test_engine_reports_once():
    engine = Engine(Config.load({"rules": {"not_normalized": {}}}), framework="keras")
    make = lambda rng, n: {"price": rng.normal(1e5, 3e4, n)}
    findings = [f for s in stream(make) for f in engine.evaluate(s)]
    assert [(f.step, f.kind) for f in findings] == [(80, "not_normalized")]
    assert json.loads(json.dumps(findings[0].to_dict()))["evidence"]["features"][0]["feature"] == "price"


def test_state_round_trips_through_json():
    # "a" starts off-center (mean 4) and later data pulls its running mean under 3: fire, then clear
    samples = (stream(lambda rng, n: {"a": rng.normal(4, 1, n), "b": rng.uniform(0, 1, n)}, 20, 32, seed=4)
               + stream(lambda rng, n: {"a": rng.normal(1, 1, n), "b": rng.uniform(0, 1, n)}, 20, 32, seed=5,
                        start=200))
    ref = NotNormalized("nn")
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = NotNormalized("nn")
    head = [v for s in samples[:19] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state
    second = NotNormalized("nn")
    second.state = state
    assert head + [v for s in samples[19:] for v in second.check(s)] == whole


def test_contract():
    assert all(n.stat in CATALOGUE for n in NotNormalized("nn").needs())
    assert set(NotNormalized.frameworks) == {"torch", "keras"}
    assert all(f.description for f in NotNormalized.Params.model_fields.values())
    assert NotNormalized("nn").check(Sample(1, stats={"loss": {None: 1.0}})) == []


def test_features_that_come_go_or_change_order_are_summed_by_name():
    # the rule keeps the rows of the last sample's features: a sample with other features, or the
    # same in another order, or a state loaded in between, must be summed as if nothing were kept
    samples = (stream(lambda rng, n: {"a": rng.normal(5, 1, n), "b": rng.uniform(0, 1, n)}, 3, 16, seed=1)
               + stream(lambda rng, n: {"b": rng.uniform(0, 1, n), "a": rng.normal(5, 1, n)}, 3, 16, seed=2, start=30)
               + stream(lambda rng, n: {"c": rng.normal(0, 50, n), "a": rng.normal(5, 1, n)}, 3, 16, seed=3, start=60))
    kept, fresh = NotNormalized("nn", NotNormalized.Params(min_samples=1)), NotNormalized("nn", NotNormalized.Params(
        min_samples=1))
    for i, sample in enumerate(samples):
        if i == 4:  # a checkpoint loaded mid-run, with the same features in another order
            kept.state = {key: values[::-1] for key, values in json.loads(json.dumps(kept.state)).items()}
            fresh.state = json.loads(json.dumps(kept.state))
        fresh.state = json.loads(json.dumps(fresh.state))  # a new state object: nothing kept from before
        assert kept.check(sample) == fresh.check(sample)
    assert kept.state == fresh.state and kept.state["features"] == ["b", "a", "c"]
    assert kept.state["count"] == [96.0, 144.0, 48.0]
    a = kept.state["features"].index("a")
    assert kept.state["sum"][a] == pytest.approx(sum(s.stats["input_sum"]["a"] for s in samples))
