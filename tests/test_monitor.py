"""Monitor: decisions from actions, user callables, state round trip."""

import json
import sys
import uuid

import pytest

from tripwire import Config, ConfigError, Monitor, RuleTriggered, Sample
from tripwire.config import RuleSpec

CALLS = []


def remember(finding):
    """A user action referenced from config as test_monitor:remember."""
    CALLS.append(finding.rule)


def failing(finding):
    raise RuntimeError("user action broke")


def loss_nan(step):
    return Sample(step=step, epoch=0, stats={"loss_nonfinite": {None: 1.0}})


def test_default_nonfinite_stops_and_records_stopped_by():
    m = Monitor({"rules": {"nonfinite": {}}, "log_dir": None}, framework="torch")
    d = m.process(loss_nan(3))
    assert d.stop is not None and d.stop.subject == "loss" and m.stopped_by is d.stop
    assert [f.rule for f in m.findings] == ["nonfinite"]
    m.close()


def test_actions_map_to_decision_fields():
    m = Monitor({"rules": {"nonfinite": {"actions": ["checkpoint", "raise"]}}, "log_dir": None}, framework="torch")
    d = m.process(loss_nan(1))
    assert d.stop is None and d.raise_ is not None and [f.rule for f in d.checkpoint] == ["nonfinite"]
    m.close()


def test_stop_on_keyword_overrides_yaml_actions():
    m = Monitor({"rules": {"nonfinite": {"actions": ["alert"]}}, "log_dir": None}, stop_on=["nonfinite"],
                framework="torch")
    assert m.process(loss_nan(1)).stop is not None
    m.close()


def test_user_callable_runs_and_a_failing_one_is_contained(caplog):
    CALLS.clear()
    m = Monitor({"rules": {"nonfinite": {"actions": ["test_monitor:remember", "test_monitor:failing"]}},
                 "log_dir": None}, framework="torch")
    m.process(loss_nan(1))
    assert CALLS == ["nonfinite"]
    assert any("user action broke" in r.getMessage() for r in caplog.records)
    m.close()


def test_user_action_is_imported_once_when_the_config_loads_and_kept(tmp_path, monkeypatch):
    name = f"user_hooks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("SEEN = []\n\ndef notify(finding):\n    SEEN.append(finding.rule)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = Config.load({"rules": {"nonfinite": {"actions": [f"{name}:notify"]}}, "log_dir": None})
    hooks = sys.modules[name]  # imported by the load, before any monitor exists
    m = Monitor(config, framework="torch")
    (tmp_path / f"{name}.py").unlink()
    monkeypatch.delitem(sys.modules, name)  # importing it again at the finding would now fail
    m.process(loss_nan(1))
    assert hooks.SEEN == ["nonfinite"]
    m.close()


def test_hand_built_config_with_a_bad_action_fails_when_the_monitor_is_built():
    config = Config(rules={"nan": RuleSpec(type="nonfinite", actions=("alert", "math:pi"))}, source="<built>")
    with pytest.raises(ConfigError) as err:
        Monitor(config, log_dir=False, framework="torch")
    e = err.value
    assert (e.source, e.path) == ("<built>", "rules.nan.actions.1")
    assert "cannot load action 'math:pi': it is not callable" in e.problem


def test_keyword_overrides():
    m = Monitor({"interval": 50}, interval=7, log_dir=False, framework="torch")
    assert m.interval == 7 and m.config.log_dir is None


def test_state_dict_is_plain_and_restores_findings():
    m = Monitor({"rules": {"nonfinite": {}}, "log_dir": None}, framework="torch")
    m.process(loss_nan(1))
    state = json.loads(json.dumps(m.state_dict()))
    fresh = Monitor({"rules": {"nonfinite": {}}, "log_dir": None}, framework="torch")
    fresh.load_state_dict(state)
    assert fresh.findings == m.findings and fresh.stopped_by == m.stopped_by
    assert fresh.process(loss_nan(2)).findings == []   # still latched after resume


def made_directories(where) -> list[str]:
    return sorted(p.name for p in where.iterdir())


def test_log_dir_none_writes_no_record_like_null_in_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for monitor in (Monitor({"rules": {"nonfinite": {}}}, log_dir=None),
                    Monitor({"rules": {"nonfinite": {}}, "log_dir": "records"}, log_dir=None),
                    Monitor("rules: {nonfinite: {}}\nlog_dir: null\n")):
        monitor.process(loss_nan(1))
        monitor.close(print_summary=False)
        assert monitor.config.log_dir is None and monitor.record_path is None
    assert made_directories(tmp_path) == []


def test_log_dir_left_out_takes_the_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for config in ({"rules": {"nonfinite": {}}, "log_dir": "records"}, {"rules": {"nonfinite": {}}}):
        monitor = Monitor(config)
        monitor.process(loss_nan(1))
        monitor.close(print_summary=False)
    assert made_directories(tmp_path) == ["records", "tripwire_runs"]
    assert (tmp_path / "records" / made_directories(tmp_path / "records")[0] / "record.sqlite").is_file()


def test_strict_keyword_overrides_the_yaml_both_ways():
    for yaml, strict, expected in [("strict: true\n", False, False), ("strict: false\n", True, True),
                                   ("strict: true\n", None, True), ("strict: false\n", None, False)]:
        monitor = Monitor(yaml, strict=strict, log_dir=False)
        assert monitor.engine.strict is expected and monitor.guard.strict is expected, (yaml, strict)


class RecordingSink:
    """A framework stand-in: records what a decision asked of it, in order."""

    checkpoint_suffix = ".pt"

    def __init__(self, root, fail_saving=False):
        self.checkpoint_root, self.fail_saving, self.effects = str(root), fail_saving, []

    def stop(self, finding):
        self.effects.append(("stop", finding.rule))

    def save_checkpoint(self, path):
        if self.fail_saving:
            raise OSError("disk full")
        self.effects.append(("checkpoint", path))


def every_action(**kwargs):
    return Monitor({"rules": {"nonfinite": {"actions": ["raise", "stop", "checkpoint"]}}}, framework="torch", **kwargs)


def test_execute_checkpoints_then_stops_then_raises(tmp_path):
    m = every_action(log_dir=False)
    sink = RecordingSink(tmp_path)
    with pytest.raises(RuleTriggered) as err:
        m.execute(m.process(loss_nan(7)), sink)
    path = tmp_path / "tripwire_checkpoints" / "tripwire-nonfinite-step7.pt"
    assert sink.effects == [("checkpoint", str(path)), ("stop", "nonfinite")]
    assert path.parent.is_dir() and err.value.finding is m.stopped_by


def test_a_checkpoint_goes_beside_the_run_record(tmp_path):
    m = Monitor({"rules": {"nonfinite": {"actions": ["checkpoint"]}}}, log_dir=tmp_path, run_name="run")
    sink = RecordingSink(tmp_path / "elsewhere")
    m.execute(m.process(loss_nan(3)), sink)
    assert sink.effects == [("checkpoint", str(tmp_path / "run" / "tripwire-nonfinite-step3.pt"))]
    m.close(print_summary=False)


def test_a_failed_checkpoint_is_logged_and_the_stop_still_happens(tmp_path, caplog):
    m = Monitor({"rules": {"nonfinite": {"actions": ["checkpoint", "stop"]}}}, log_dir=False)
    sink = RecordingSink(tmp_path, fail_saving=True)
    m.execute(m.process(loss_nan(3)), sink)
    assert sink.effects == [("stop", "nonfinite")]
    assert any("cannot save a checkpoint" in r.getMessage() and "disk full" in r.getMessage() for r in caplog.records)


def test_an_empty_decision_does_nothing(tmp_path):
    m = every_action(log_dir=False)
    sink = RecordingSink(tmp_path)
    m.execute(m.process(Sample(step=1, stats={"loss_nonfinite": {None: 0.0}})), sink)
    assert sink.effects == [] and m.stopped_by is None


def test_agreed_gives_a_rank_whose_rules_stayed_silent_the_other_ranks_effects(tmp_path):
    m = every_action(log_dir=False, is_main=False)
    quiet = m.process(Sample(step=5, epoch=1, stats={"loss_nonfinite": {None: 0.0}}))
    asked = []

    def some_rank_fired(flag):
        asked.append(flag)
        return True

    agreed = m.agreed(quiet, some_rank_fired)
    assert asked == [False, False, False]  # stop, checkpoint, raise: one collective each
    assert agreed.stop.rule == agreed.raise_.rule == agreed.checkpoint[0].rule == "tripwire"
    assert (agreed.stop.step, agreed.stop.epoch) == (5, 1) and "another rank" in agreed.stop.message
    sink = RecordingSink(tmp_path)
    with pytest.raises(RuleTriggered):
        m.execute(agreed, sink)
    assert [e[0] for e in sink.effects] == ["checkpoint", "stop"] and m.stopped_by == agreed.stop
    assert not (tmp_path / "tripwire_checkpoints").exists()  # only the main process makes the folder


def test_agreed_asks_only_about_the_actions_some_rule_has():
    m = Monitor({"rules": {"nonfinite": {}}}, log_dir=False)  # alert and stop
    asked = []
    agreed = m.agreed(m.process(loss_nan(2)), lambda flag: asked.append(flag) or flag, stop=True)
    assert asked == [] and agreed.stop.rule == "nonfinite" and agreed.checkpoint == [] and agreed.raise_ is None


def test_restart_begins_a_fresh_run_with_the_same_settings():
    m = Monitor({"rules": {"nonfinite": {}}}, stop_on=["nonfinite"], interval=3, log_dir=False)
    m.process(loss_nan(1))
    m.guard.fail("a part", RuntimeError("broke"))
    m.restart(is_main=False)
    assert (m.findings, m.stopped_by, m.guard.disabled, m.is_main) == ([], None, {}, False)
    assert m.interval == 3 and m.stop_on == ("nonfinite",)
    assert m.process(loss_nan(2)).stop is not None  # the latch was reset too


def test_a_copy_of_an_open_monitor_keeps_findings_but_not_the_open_record(tmp_path):
    import copy
    import pickle

    m = Monitor({"rules": {"nonfinite": {}}}, log_dir=tmp_path)
    m.process(loss_nan(1))
    for twin in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert twin.findings == m.findings and twin._record is None and twin.record_path == m.record_path
    m.close(print_summary=False)


def test_the_schedule_samples_the_first_step_then_every_interval_th():
    m = Monitor({"interval": 4}, log_dir=False)
    assert [s for s in range(13) if m.due(s)] == [0, 4, 8, 12]
    # several steps between two callbacks: the latest sampled one of each stretch, None when none is
    stretches = [(0, 3), (3, 8), (8, 9), (9, 12), (12, 20), (5, 5)]
    assert [m.latest_due(a, b) for a, b in stretches] == [0, 4, 8, None, 16, None]
    assert all(m.latest_due(a, b) == max([s for s in range(a, b) if m.due(s)], default=None)
               for a in range(30) for b in range(a, 40))
