"""The alert rate limit: a flapping rule's alerts stop at the limit, the rest go out as one
summary per window (and at close), and the run record keeps every finding."""

from __future__ import annotations

import pytest

from tripwire import ConfigError, Run
from tripwire.alerts import AlertDispatcher
from tripwire.alerts.rate_limit import RateLimiter
from tripwire.config import Config, RateLimitConfig
from tripwire.monitor import Monitor
from tripwire.stats import Sample

from .conftest import make_finding


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def told(caplog, logger: str = "rl.run") -> list:
    return [r.tripwire_finding for r in caplog.records if r.name == logger]


def test_at_most_the_limit_then_one_summary_when_the_window_ends(caplog):
    clock = Clock()
    d = AlertDispatcher({"log": {"logger": "rl.run"}, "rate_limit": {"alerts": 3, "window_s": 3600}}, clock=clock)
    for step in range(60):  # one minute apart, three subjects
        clock.now += 60
        d.send(make_finding(step=step, subject=f"fc{step % 3}"))
        d.tick()
    assert [f.step for f in told(caplog)] == [0, 1, 2]  # 57 held back, the window still open
    clock.now += 3600
    d.tick()
    summary = told(caplog)[3]
    assert summary.message.startswith("dead_relu fired 57 more times on 3 subjects since ")
    assert summary.evidence["held_back"] == 57 and summary.evidence["subjects"] == ["fc0", "fc1", "fc2"]
    assert summary.step == 59 and summary.subject is None
    d.send(make_finding(step=100))  # a new window: alerted again
    d.close(timeout_s=1)
    assert [f.step for f in told(caplog)][4:] == [100] and d.held_back == 57
    assert d.delivered == {"log": 5}


def test_what_is_held_back_at_the_end_is_summarised_at_close(caplog):
    d = AlertDispatcher({"log": {"logger": "rl.run"}, "rate_limit": {"alerts": 2}})
    for step in range(5):
        d.send(make_finding(step=step, subject=None))
    d.send(make_finding(rule="nonfinite", kind="nonfinite", severity="error", step=7))
    d.close(timeout_s=1)
    messages = [f.message for f in told(caplog)]
    assert len(messages) == 4 and messages[3].startswith("dead_relu fired 3 more times since ")
    assert told(caplog)[2].rule == "nonfinite"  # each rule has its own limit


def test_under_the_limit_no_summary(caplog):
    d = AlertDispatcher({"log": {"logger": "rl.run"}, "rate_limit": {"alerts": 5}})
    for step in range(5):
        d.send(make_finding(step=step))
    d.close(timeout_s=1)
    assert [f.step for f in told(caplog)] == [0, 1, 2, 3, 4] and d.held_back == 0


def test_no_rate_limit_alerts_every_finding(caplog):
    d = AlertDispatcher({"log": {"logger": "rl.run"}, "rate_limit": None})
    for step in range(50):
        d.send(make_finding(step=step))
    d.close(timeout_s=1)
    assert len(told(caplog)) == 50 and d.held_back == 0


def test_summary_takes_the_worst_severity_and_counts_merged_subjects():
    clock = Clock()
    limiter = RateLimiter(RateLimitConfig(alerts=1, window_s=60), clock=clock)
    assert len(limiter.admit(make_finding(step=1))) == 1
    assert limiter.admit(make_finding(step=2, severity="error", evidence={"subjects": {"a": 1, "b": 2}})) == []
    assert limiter.admit(make_finding(step=3, subject="c")) == []
    clock.now += 60
    summary, alert = limiter.admit(make_finding(step=4))
    assert summary.severity == "error" and summary.evidence["subjects"] == ["a", "b", "c"]
    assert "2 more times on 3 subjects" in summary.message and "1 per rule per minute" in summary.message
    assert alert.step == 4 and limiter.flush() == []


def test_a_flapping_rule_stream_alerts_the_limit_plus_one_summary_and_records_every_occurrence(tmp_path, caplog):
    monitor = Monitor({"rules": {"nonfinite": {"rearm_after": 1, "actions": ["alert"]}}, "log_dir": str(tmp_path),
                       "actions": {"log": {"logger": "rl.run"}, "rate_limit": {"alerts": 4}}},
                      framework="torch", run_name="flap")
    for step in range(200):  # fires, clears, fires ...: 100 findings
        monitor.process(Sample(step=step, epoch=0, stats={"loss_nonfinite": {None: float(step % 2 == 0)}}))
    monitor.close(print_summary=False)
    alerts = told(caplog)
    assert [f.step for f in alerts[:4]] == [0, 2, 4, 6] and len(alerts) == 5
    assert alerts[4].message.startswith("nonfinite fired 96 more times on 1 subject since ")
    assert len(Run(tmp_path / "flap").findings) == 100 == len(monitor.findings)


def test_hysteresis_keeps_a_flapping_finding_one_finding_with_its_repeats_on_record(tmp_path, caplog):
    monitor = Monitor({"rules": {"nonfinite": {"rearm_after": 5, "actions": ["alert"]}}, "log_dir": str(tmp_path),
                       "actions": {"log": {"logger": "rl.run"}}}, framework="torch", run_name="flap")
    flags = [1, 0, 1, 0, 0, 1] + [0] * 5 + [1]  # re-fires after 1 and 2 clears: repeats; after 5: new
    for step, flag in enumerate(flags):
        monitor.process(Sample(step=step, epoch=0, stats={"loss_nonfinite": {None: float(flag)}}))
    monitor.close(print_summary=False)
    run = Run(tmp_path / "flap")
    assert [f.step for f in monitor.findings] == [0, 11] == [f.step for f in told(caplog)]
    assert [f.step for f in run.findings] == [0, 11] and [f.step for f in run.repeats] == [2, 5]
    assert monitor.repeats == {("nonfinite", "loss"): 2}
    assert "(fired 4 times)" in monitor.summary()


def test_repeats_survive_a_resume():
    first = Monitor({"rules": {"nonfinite": {"actions": ["alert"]}}, "log_dir": None}, framework="torch")
    for step, flag in enumerate([1, 0, 1]):
        first.process(Sample(step=step, stats={"loss_nonfinite": {None: float(flag)}}))
    resumed = Monitor({"rules": {"nonfinite": {"actions": ["alert"]}}, "log_dir": None}, framework="torch")
    resumed.load_state_dict(first.state_dict())
    for step, flag in enumerate([0, 1], start=3):  # still re-arming after the resume: a repeat
        assert resumed.process(Sample(step=step, stats={"loss_nonfinite": {None: float(flag)}})).findings == []
    assert resumed.repeats == {("nonfinite", "loss"): 2}
    first.close(print_summary=False)
    resumed.close(print_summary=False)


@pytest.mark.parametrize("section, bad, path", [
    ({"rules": {"nonfinite": {"rearm_after": 0}}}, "0", "rules.nonfinite.rearm_after"),
    ({"rules": {"nonfinite": {"rearm_after": "ten"}}}, "'ten'", "rules.nonfinite.rearm_after"),
    ({"rules": {"nonfinite": {"rearm_after": True}}}, "True", "rules.nonfinite.rearm_after"),
    ({"actions": {"rate_limit": {"alerts": 0}}}, "0", "actions.rate_limit.alerts"),
    ({"actions": {"rate_limit": {"per_hour": 3}}}, "per_hour", "actions.rate_limit.per_hour"),
])
def test_bad_values_are_located_config_errors(section, bad, path):
    with pytest.raises(ConfigError) as err:
        Config.load(section)
    text = str(err.value)
    assert err.value.path == path and bad in text
    assert "rearm_after" not in path or "valid: 1" in text
    assert "per_hour" not in path or "alerts" in text  # the valid keys are named


def test_rearm_after_from_config_and_from_the_rule_type():
    from tripwire.engine import Engine

    engine = Engine(Config.load({"rules": {"nonfinite": {"rearm_after": 3}, "overfit": {}, "dead_relu": {}}}))
    assert engine.rearm_after == {"nonfinite": 3, "overfit": 1, "dead_relu": 10}
