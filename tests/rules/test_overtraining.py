"""`overtraining` on scripted streams: train loss every 10 steps, val_loss at each epoch end (100 steps)."""

import json

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.overtraining import Overtraining
from tripwire.stats import CATALOGUE, Sample


def epochs(train_at, vals, steps=100, every=10):
    """Train samples every `every` steps, then a val_loss sample at each epoch end."""
    out = []
    for e, val in enumerate(vals):
        for s in range(e * steps + every, (e + 1) * steps + 1, every):
            out.append(Sample(s, epoch=e, stats={"loss": {None: float(train_at(s))}}))
        out.append(Sample((e + 1) * steps, epoch=e, stats={"val_loss": {None: float(val)}}))
    return out


def verdicts(rule, samples):
    return [(s.epoch, v.fired) for s in samples for v in rule.check(s)]


falling = lambda s: 2.0 * np.exp(-s / 500)


def test_val_stalls_while_train_improves_fires_after_patience():
    vals = [1.0, 0.8, 0.7, 0.695, 0.72, 0.75, 0.71, 0.8, 0.85]  # best 0.7 at epoch 2 (0.695 is < 1% better)
    out = verdicts(Overtraining("overtraining"), epochs(falling, vals))
    # levels: best 0.7 at epoch 3; the validations after it count towards patience, and clear meanwhile
    assert out == [(e, False) for e in range(8)] + [(8, True)]


def test_message_names_best_and_current():
    rule = Overtraining("overtraining", Overtraining.Params(patience=2))
    fired = [v for s in epochs(falling, [1.0, 0.7, 0.7, 0.75, 0.8, 0.85]) for v in rule.check(s) if v.fired]
    assert fired[0].evidence["best_val_loss"] == 0.7 and fired[0].evidence["best_step"] == 300
    assert fired[0].evidence["val_loss"] == 0.8 and fired[0].evidence["val_level"] == 0.75
    assert "best 0.7" in fired[0].message and "now 0.8" in fired[0].message and "step 300" in fired[0].message
    assert fired[0].evidence["train_loss"] < fired[0].evidence["train_loss_at_best"]


def test_val_still_improving_stays_silent():
    rng = np.random.default_rng(0)
    vals = [1.2 * np.exp(-e / 8) * (1 + 0.02 * rng.standard_normal()) + 0.2 for e in range(30)]
    noisy_train = lambda s: falling(s) * (1 + 0.2 * rng.standard_normal())
    assert not any(fired for _, fired in verdicts(Overtraining("overtraining"), epochs(noisy_train, vals)))


def test_both_plateaued_is_not_overtraining():
    vals = [1.0, 0.8, 0.7] + [0.7] * 10
    flat_after = lambda s: max(falling(s), falling(200))
    out = verdicts(Overtraining("overtraining"), epochs(flat_after, vals))
    assert not any(fired for _, fired in out)
    assert out[-1] == (12, False)


def test_a_new_best_clears_and_the_engine_rearms():
    engine = Engine(Config.load({"rules": {"overtraining": {"patience": 2}}}), framework="keras")
    vals = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8]  # level 0.5 from epoch 5: a new best
    findings = [(f.epoch, f.step) for s in epochs(falling, vals) for f in engine.evaluate(s)]
    assert findings == [(2, 300), (8, 900)]


def test_min_delta_is_relative():
    vals = [1.0, 0.95, 0.93, 0.91]  # 5%, 7%, 9% under the first: under a 10% improvement, no new best
    rule = Overtraining("overtraining", Overtraining.Params(patience=2, min_delta=0.1))
    assert verdicts(rule, epochs(falling, vals)) == [(0, False), (1, False), (2, True), (3, True)]
    rule = Overtraining("overtraining", Overtraining.Params(patience=2, min_delta=0.01))
    assert verdicts(rule, epochs(falling, vals)) == [(0, False), (1, False), (2, False), (3, False)]


def test_xgboost_rounds_carry_both_losses_in_one_sample():
    rule = Overtraining("overtraining")
    out = []
    for rnd in range(40):
        val = 0.5 if rnd < 10 else 0.5 + 0.001 * rnd
        out += [(rnd, v.fired) for v in rule.check(Sample(rnd, stats={"loss": {None: 0.9 ** rnd},
                                                                       "val_loss": {None: val}}))]
    assert next(r for r, fired in out if fired) == 5  # best at round 0; 0.5 is never 1% better
    assert [r for r, _ in out] == list(range(40))  # every round with a val_loss is judged


def test_state_round_trips_through_json():
    rng = np.random.default_rng(5)
    vals = [1.0 / (e + 1) + max(0, e - 6) * 0.05 + 0.02 * rng.standard_normal() for e in range(24)]
    samples = epochs(lambda s: falling(s) * (1 + 0.1 * rng.standard_normal()), vals)
    params = Overtraining.Params(patience=3)
    ref = Overtraining("overtraining", params)
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = Overtraining("overtraining", params)
    head = [v for s in samples[:101] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state
    second = Overtraining("overtraining", params)
    second.state = state
    assert head + [v for s in samples[101:] for v in second.check(s)] == whole


@pytest.mark.parametrize("stats", [{"loss": {None: 1.0}}, {"val_loss": {None: float("nan")}}, {}])
def test_no_validation_no_verdict(stats):
    assert Overtraining("overtraining").check(Sample(10, stats=stats)) == []


def test_contract():
    assert all(n.stat in CATALOGUE for n in Overtraining("overtraining").needs())
    assert set(Overtraining.frameworks) == {"torch", "keras", "xgboost"}
    assert all(f.description for f in Overtraining.Params.model_fields.values())


def test_a_noisy_validation_loss_from_a_tiny_set_is_judged_against_its_noise():
    # 15 validation rows: val_loss jumps ~30% between epochs around a falling trend; a lucky low
    # at epoch 4 is never beaten by 1%, yet the model keeps improving
    rng = np.random.default_rng(3)
    vals = [0.9 * np.exp(-e / 30) * (1 + 0.3 * rng.standard_normal()) + 0.1 for e in range(30)]
    assert not any(fired for _, fired in verdicts(Overtraining("overtraining"), epochs(falling, vals)))
    assert any(fired for _, fired in verdicts(Overtraining("overtraining", Overtraining.Params(z=0)),
                                              epochs(falling, vals)))


def test_a_noisy_validation_loss_that_climbs_out_of_its_noise_still_fires():
    rng = np.random.default_rng(3)
    vals = [0.5 + 0.05 * rng.standard_normal() for _ in range(10)] + \
           [0.5 + 0.08 * e + 0.05 * rng.standard_normal() for e in range(1, 15)]
    fired = [e for e, f in verdicts(Overtraining("overtraining"), epochs(falling, vals)) if f]
    assert fired and fired[0] >= 10


def test_a_validation_that_beats_the_best_never_fires_although_the_level_lags():
    # a slow starter: val_loss at chance for 5 validations while the training loss creeps down,
    # then a sharp improvement; the median-of-3 level still sits above the best at that validation
    rule = Overtraining("overtraining")
    vals = [1.388, 1.433, 1.447, 1.412, 1.425, 1.146]
    fired = []
    for i, val in enumerate(vals):
        step = 32 * (i + 1)
        rule.check(Sample(step, stats={"loss": {None: 1.39 - 0.02 * i}}))
        fired += [step for v in rule.check(Sample(step, stats={"val_loss": {None: val}})) if v.fired]
    assert fired == []
    rule.check(Sample(224, stats={"loss": {None: 1.2}}))
    assert not any(v.fired for v in rule.check(Sample(224, stats={"val_loss": {None: 1.0}})))
