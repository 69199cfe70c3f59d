"""What rules need is checked when the engine is built: unknown statistics are configuration
errors, statistics the framework's callback does not collect are reported once per run."""

from __future__ import annotations

import logging

import pytest

from tripwire import Config, ConfigError, Need, Rule
from tripwire.cli import main
from tripwire.engine import Engine
from tripwire.monitor import Monitor
from tripwire.stats import CATALOGUE


class NeedsTypo(Rule):
    """A user rule with a misspelt statistic."""

    kind = "needs_typo"
    summary = "needs grad_nrom"

    def needs(self):
        return [Need("loss"), Need("grad_nrom")]

    def check(self, sample):
        return []


class NeedsStrings(NeedsTypo):
    """A user rule that returns names instead of Need objects."""

    def needs(self):
        return ["loss"]


class NeedsObserved(NeedsTypo):
    """A user rule over a series the training code reports with tripwire.observe."""

    def needs(self):
        return [Need("user/attn_entropy"), Need("loss")]


class NeedsTrees(NeedsTypo):
    """A user rule that reads an XGBoost-only statistic (so it can run under XGBoost only)."""

    def needs(self):
        return [Need("loss"), Need("tree_depth")]


class TorchOnly(NeedsTypo):
    """A user rule over the loss (which every callback collects) declared for torch only."""

    frameworks = ("torch",)

    def needs(self):
        return [Need("loss")]


class NeedsRaises(NeedsTypo):
    def needs(self):
        raise RuntimeError("cannot work out what I need")


def rules(**types: str) -> dict:
    return {"rules": {name: {"type": f"test_engine_needs:{kind}"} for name, kind in types.items()}}


def test_an_unknown_statistic_is_a_config_error_naming_rule_statistic_and_choices(tmp_path):
    path = tmp_path / "tripwire.yaml"
    path.write_text("rules:\n  mine:\n    type: test_engine_needs:NeedsTypo\n")
    with pytest.raises(ConfigError) as info:
        Engine(Config.load(path), framework="torch")
    error = info.value
    assert error.source == str(path) and error.path == "rules.mine"
    assert "rule 'mine' (test_engine_needs:NeedsTypo) needs the statistic 'grad_nrom'" in error.problem
    assert "(did you mean 'grad_norm'?)" in error.problem
    assert all(name in error.problem for name in CATALOGUE) and "'user/<name>'" in error.problem


def test_every_callback_refuses_it_when_built():
    with pytest.raises(ConfigError, match="grad_nrom"):
        Monitor(rules(mine="NeedsTypo"), framework="keras", log_dir=False)
    with pytest.raises(ConfigError, match="grad_nrom"):
        Engine(Config.load(rules(mine="NeedsTypo")))  # no framework: `tripwire check`


def test_needs_must_be_need_objects():
    with pytest.raises(ConfigError, match=r"needs\(\) must return tripwire.Need objects, got 'loss'"):
        Engine(Config.load(rules(mine="NeedsStrings")), framework="torch")


def test_observed_series_are_valid_needs():
    engine = Engine(Config.load(rules(mine="NeedsObserved")), framework="torch")
    assert engine.needs() == {Need("user/attn_entropy"), Need("loss")}


def test_a_rule_whose_needs_raise_is_still_disabled_at_run_time():
    engine = Engine(Config.load(rules(mine="NeedsRaises")), framework="torch")
    assert engine.needs() == set() and "mine" in engine.disabled


def test_check_command_reports_the_unknown_statistic(tmp_path, capsys):
    path = tmp_path / "tripwire.yaml"
    path.write_text("rules:\n  mine:\n    type: test_engine_needs:NeedsTypo\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path} at 'rules.mine'" in err and "'grad_nrom'" in err


@pytest.mark.parametrize("config, framework, expected", [
    (rules(mine="NeedsTrees"), "torch",
     "tripwire: rule mine needs tree_depth, which LightningTripwire does not collect; it will not run"),
    ({"rules": {"tree_depth": {}, "nonfinite": {}}}, "keras",
     "tripwire: rule tree_depth needs tree_depth, which KerasTripwire does not collect; it will not run"),
    ({"rules": {"deep": {"type": "tree_depth"}, "nonfinite": {}}}, "torch",
     "tripwire: rule deep needs tree_depth, which LightningTripwire does not collect; it will not run"),
    (rules(mine="NeedsObserved"), "xgboost",
     "tripwire: rule mine needs user/attn_entropy, which XGBoostTripwire does not collect; it will not run"),
    (rules(mine="TorchOnly"), "xgboost",
     "tripwire: rule mine (test_engine_needs:TorchOnly) is for torch training, not XGBoostTripwire; it will not run"),
])
def test_a_rule_the_callback_cannot_feed_is_reported_once_per_run(config, framework, expected, caplog):
    caplog.set_level(logging.INFO, logger="tripwire")
    monitor = Monitor(config, framework=framework, log_dir=False)
    name = expected.split()[2]
    assert name not in monitor.engine.rules and monitor.engine.not_run[name] == expected[len("tripwire: "):]
    monitor.open()
    monitor.open()
    monitor.close(print_summary=False)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if "will not run" in r.getMessage()] == [
        (logging.WARNING, expected)]


def test_the_default_set_leaves_other_frameworks_rules_out_quietly(caplog):
    monitor = Monitor(None, framework="torch", log_dir=False)
    monitor.open()
    monitor.close(print_summary=False)
    assert "tree_depth" not in monitor.engine.rules and monitor.engine.not_run == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_only_the_main_process_reports_it(caplog):
    monitor = Monitor(rules(mine="NeedsTrees"), framework="torch", log_dir=False, is_main=False)
    monitor.open()
    assert "mine" in monitor.engine.not_run and not [r for r in caplog.records if "will not run" in r.getMessage()]


class LossOnly(NeedsTypo):
    """A user rule over the loss that does not say where it runs."""

    def needs(self):
        return [Need("loss")]


@pytest.mark.parametrize("framework, running", [("torch", {"loss", "torch"}), ("keras", {"loss"}),
                                                ("xgboost", {"loss", "trees"})])
def test_where_a_rule_runs_follows_from_its_needs(framework, running):
    assert LossOnly.frameworks == ("torch", "keras", "xgboost") and NeedsTrees.frameworks == ("xgboost",)
    assert TorchOnly.frameworks == ("torch",)  # set by the rule: fewer places
    engine = Engine(Config.load(rules(loss="LossOnly", torch="TorchOnly", trees="NeedsTrees")), framework=framework)
    assert set(engine.rules) == running


def test_keras_feeds_the_validation_rules_without_epochs_since_val():
    """Keras validates at epoch ends and never sends epochs_since_val, whose absence means one epoch."""
    engine = Engine(Config.load({"rules": {"overfit": {}, "classifier_confusion": {}}}), framework="keras")
    assert set(engine.rules) == {"overfit", "classifier_confusion"} and engine.not_run == {}
    assert Need("epochs_since_val") in engine.needs()
