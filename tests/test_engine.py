"""Engine: latching, merging, re-arming, failure isolation, state round trip, stop_on."""

import json
import logging

import pytest

from tripwire import Config, ConfigError, Need, Rule, RuleError, RuleParams, Sample
from tripwire.engine import Engine


class Above(Rule):
    """Test rule: every subject of series `user/x` (reported with tripwire.observe) above `limit` fires."""

    kind = "above"
    summary = "x above a limit"
    frameworks = ("torch",)

    class Params(RuleParams):
        limit: float = 1.0

    def needs(self):
        return [Need("user/x")]

    def check(self, sample):
        self.state["seen"] = self.state.get("seen", 0) + 1
        values = sample.series("user/x") or {}
        return [self.fire(s, value=v, threshold=self.params.limit, message=f"{s} is {v}", suggestion="lower it")
                if v > self.params.limit else self.clear(s) for s, v in values.items()]


class Broken(Above):
    """Test rule that raises on every check."""

    def check(self, sample):
        raise ZeroDivisionError("boom")


def engine(rules, **kw):
    return Engine(Config.load({"rules": rules}), framework="torch", **kw)


def x(step, **values):
    return Sample(step=step, epoch=0, stats={"user/x": values})


def test_fires_once_per_subject_and_rearms_after_clear():
    e = engine({"a": {"type": "test_engine:Above", "rearm_after": 1}})
    assert [f.subject for f in e.evaluate(x(1, l1=2.0, l2=0.0))] == ["l1"]
    assert e.evaluate(x(2, l1=3.0, l2=0.0)) == []          # still latched
    assert e.evaluate(x(3, l1=0.0)) == []                  # clears l1: one clear re-arms it
    again = e.evaluate(x(4, l1=5.0))
    assert [(f.subject, f.step, f.value) for f in again] == [("l1", 4, 5.0)]


def test_a_subject_rearms_only_after_rearm_after_clear_samples_in_a_row():
    e = engine({"a": {"type": "test_engine:Above", "rearm_after": 3}})
    assert len(e.judge(x(1, l1=2.0))[0]) == 1
    assert e.judge(x(2, l1=0.0)) == ([], []) and e.judge(x(3, l1=0.0)) == ([], [])
    new, again = e.judge(x(4, l1=2.0))  # two clears, not three: the same fault, flapping
    assert new == [] and [(f.subject, f.step) for f in again] == [("l1", 4)]
    assert e.judge(x(5, l1=2.0)) == ([], [])  # still firing: neither new nor a repeat
    for step in (6, 7, 8):
        assert e.judge(x(step, l1=0.0)) == ([], [])
    new, again = e.judge(x(9, l1=2.0))  # clear three samples in a row: a new finding
    assert [(f.subject, f.step) for f in new] == [("l1", 9)] and again == []


def test_the_rearm_count_survives_a_state_round_trip():
    e = engine({"a": {"type": "test_engine:Above", "rearm_after": 2}})
    e.judge(x(1, l1=2.0))
    e.judge(x(2, l1=0.0))
    resumed = engine({"a": {"type": "test_engine:Above", "rearm_after": 2}})
    resumed.load_state_dict(json.loads(json.dumps(e.state_dict())))
    assert [f.step for f in resumed.judge(x(3, l1=0.0))[0]] == []
    assert [f.step for f in resumed.judge(x(4, l1=2.0))[0]] == [4]  # the second clear re-armed it


def test_several_subjects_in_one_sample_make_one_finding_naming_them():
    e = engine({"a": {"type": "test_engine:Above"}})
    (f,) = e.evaluate(x(1, **{f"l{i}": 2.0 for i in range(8)}))
    assert f.subject.startswith("l0, l1, l2, l3, l4") and "(+3 more)" in f.subject
    assert set(f.evidence["subjects"]) == {f"l{i}" for i in range(8)}
    assert "also 7 more" in f.message


def test_finding_fields_come_from_rule_and_config():
    e = engine({"a": {"type": "test_engine:Above", "limit": 0.5, "severity": "error"}})
    (f,) = e.evaluate(x(7, l1=1.0))
    assert (f.rule, f.kind, f.severity, f.threshold, f.value, f.epoch) == ("a", "above", "error", 0.5, 1.0, 0)
    json.dumps(f.to_dict())


def test_rule_that_raises_is_disabled_with_one_logged_error(caplog):
    e = engine({"bad": {"type": "test_engine:Broken"}, "good": {"type": "test_engine:Above"}})
    with caplog.at_level(logging.ERROR, logger="tripwire"):
        for step in range(5):
            findings = e.evaluate(x(step, l1=2.0 + step))
            assert all(f.rule == "good" for f in findings)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "bad" in errors[0].getMessage() and "boom" in errors[0].getMessage()
    assert "bad" in e.disabled and "good" not in e.disabled


def test_strict_reraises():
    e = engine({"bad": {"type": "test_engine:Broken"}}, strict=True)
    with pytest.raises(RuleError, match="boom"):
        e.evaluate(x(1, l1=1.0))


def test_state_round_trips_through_json():
    e = engine({"a": {"type": "test_engine:Above"}})
    e.evaluate(x(1, l1=2.0))
    state = json.loads(json.dumps(e.state_dict()))
    fresh = engine({"a": {"type": "test_engine:Above"}})
    fresh.load_state_dict(state)
    assert fresh.evaluate(x(2, l1=3.0)) == []          # latch survived
    assert fresh.rules["a"].state == {"seen": 2}


def test_stop_on_adds_stop_and_rejects_unknown_names():
    e = engine({"a": {"type": "test_engine:Above"}}, stop_on=["a"])
    assert e.actions["a"] == ("alert", "stop")
    with pytest.raises(ConfigError, match="not enabled"):
        engine({"a": {"type": "test_engine:Above"}}, stop_on=["nope"])


def test_rules_for_other_frameworks_are_left_out():
    e = Engine(Config.load({"rules": {"a": {"type": "test_engine:Above"}}}), framework="xgboost")
    assert e.rules == {} and e.needs() == set()


def test_needs_are_the_union():
    e = engine({"a": {"type": "test_engine:Above"}, "b": {"type": "test_engine:Above", "limit": 3}})
    assert e.needs() == {Need("user/x")}
