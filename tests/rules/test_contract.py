"""The contract every registered rule type keeps, checked on a synthetic stream of every statistic
it needs: valid defaults, catalogued needs, documentation, plain JSON state that resumes exactly,
well-formed verdicts, and a working repr."""

import json
import math

import numpy as np
import pytest

from tripwire.config import ACTIONS
from tripwire.finding import SEVERITIES
from tripwire.registry import builtin_rules
from tripwire.rule import Rule, Verdict
from tripwire.stats import CATALOGUE, Need, Sample

RULES = builtin_rules()
SUBJECTS = {
    "run": [None], "parameter": ["net.0.weight", "net.0.bias", "net.2.weight"], "layer": ["net.1", "net.3"],
    "class": ["0", "1", "2"], "class pair": [f"{t},{p}" for t in range(3) for p in range(3)],
    "feature": [f"f{i}" for i in range(12)],
}


def _value(rng, stat):
    """A plausible but adversarial value: flags, shares, counts, or anything over 17 decades."""
    if stat in ("loss_nonfinite", "grad_nonfinite", "weight_nonfinite", "amp_skipped", "weight_unchanged"):
        return float(rng.random() < 0.3)
    if "frac" in stat or stat in ("init_identical_rows", "feature_importance"):
        return float(rng.choice([0.0, 1.0, rng.random()]))
    if stat.endswith(("_count", "_total")) or stat == "confusion":
        return float(rng.integers(0, 1000))
    if stat == "tree_depth":
        return float(rng.integers(1, 20))
    magnitude = 10.0 ** rng.uniform(-12, 5)
    return float(magnitude if stat.endswith(("norm", "var", "mean", "ratio", "gain", "loss", "sumsq"))
                 else magnitude * rng.choice([-1.0, 1.0]))


def stream(rule: Rule, length=80, seed=0, nonfinite=False):
    """Samples every 10 steps holding each needed series with probability 0.7; val_loss at epoch ends."""
    rng = np.random.default_rng(seed)
    needs = rule.needs()
    out = []
    for i in range(length):
        stats = {}
        for need in needs:
            if rng.random() < 0.7 and (need.stat != "val_loss" or i % 10 == 9):
                subjects = SUBJECTS.get(CATALOGUE[need.stat].per, ["s0", "s1"])
                stats[need.key] = {s: _value(rng, need.stat) for s in subjects}
                if nonfinite and rng.random() < 0.2:
                    subject = next(iter(stats[need.key]))
                    stats[need.key][subject] = float(rng.choice([math.nan, math.inf, -math.inf]))
        out.append(Sample(step=10 * (i + 1), epoch=i // 10, stats=stats))
    return out


def run(rule, samples):
    return [rule.check(s) for s in samples]


@pytest.fixture(params=sorted(RULES), name="cls")
def _cls(request):
    return RULES[request.param]


def test_class_attributes(cls):
    assert cls.kind in RULES and RULES[cls.kind] is cls
    assert cls.summary and "\n" not in cls.summary.strip()
    assert cls.__doc__ and ">>>" in cls.__doc__, "docstring with a doctest example"
    assert cls.severity in SEVERITIES and set(cls.default_actions) <= set(ACTIONS)
    assert cls.frameworks and set(cls.frameworks) <= {"torch", "keras", "xgboost"}


def test_params_have_validating_documented_defaults(cls):
    params = cls.Params()
    assert cls.Params.model_validate({}) == params
    for name, field in cls.Params.model_fields.items():
        assert not field.is_required(), f"{name} has no default"
        assert field.description, f"{name} has no description"
    assert cls.Params.model_validate(json.loads(json.dumps(params.model_dump(mode="json")))) == params
    with pytest.raises(ValueError):
        cls.Params.model_validate({"no_such_parameter": 1})


def test_needs_are_catalogued(cls):
    needs = cls(cls.kind).needs()
    assert needs and all(isinstance(n, Need) and n.stat in CATALOGUE for n in needs)
    assert len({n.key for n in needs}) == len(needs)


def test_verdicts_are_well_formed(cls):
    rule = cls(cls.kind)
    assert rule.check(Sample(step=1)) == []
    for verdicts in run(rule, stream(rule)):
        assert len({v.subject for v in verdicts}) == len(verdicts), "one verdict per subject per sample"
        for v in verdicts:
            assert isinstance(v, Verdict) and (v.subject is None or isinstance(v.subject, str))
            assert v.severity is None or v.severity in SEVERITIES
            if v.fired:
                assert v.message and v.suggestion
                assert all(x is None or math.isfinite(x) for x in (v.value, v.threshold))
                json.dumps(v.evidence)  # plain types (Finding turns NaN/Inf into strings)


def test_state_is_plain_json_and_resumes_exactly(cls):
    rule = cls(cls.kind)
    samples = stream(rule, length=120, seed=1)
    run(rule, samples[:60])
    text = json.dumps(rule.state, allow_nan=False)
    assert json.loads(text) == rule.state
    resumed = cls(cls.kind)
    resumed.state = json.loads(text)
    assert run(resumed, samples[60:]) == run(rule, samples[60:])
    assert json.loads(json.dumps(rule.state, allow_nan=False)) == rule.state


def test_survives_non_finite_values(cls):
    rule = cls(cls.kind)
    run(rule, stream(rule, seed=2, nonfinite=True))
    json.dumps(rule.state, allow_nan=False)


def test_repr(cls):
    text = repr(cls("my_name"))
    assert cls.__name__ in text and "my_name" in text
