"""Remediation actions in the config: by name or with parameters, validated with located errors,
only on rules that can drive them, and only in callbacks that can carry them out."""

import pytest

from tripwire import Config, ConfigError, Monitor
from tripwire.remediation import ReduceLr

YAML = """\
rules:
  loss_spike:
    actions:
      - alert
      - skip_step
      - reduce_lr: {factor: 0.3, max_times: 2}
"""


def test_a_remediation_with_parameters_in_yaml():
    spec = Config.load(YAML).rules["loss_spike"]
    assert spec.actions == ("alert", "skip_step", "reduce_lr")
    assert spec.remediation("reduce_lr") == ReduceLr(factor=0.3, min_lr=0.0, max_times=2)
    assert spec.remediation("skip_step").model_dump() == {}


def test_by_name_it_takes_the_defaults():
    spec = Config.load({"rules": {"exploding_gradient": {"actions": ["reduce_lr"]}}}).rules["exploding_gradient"]
    assert spec.remediation("reduce_lr") == ReduceLr()


@pytest.mark.parametrize("action, match", [
    ({"reduce_lr": {"factor": 1.5}}, r"<yaml>:5:9 at 'rules\.loss_spike\.actions\.0\.reduce_lr\.factor': "
                                     r"Input should be less than 1 \(got 1\.5\)"),
    ({"reduce_lr": {"factr": 0.5}}, r"unknown key 'factr' \(did you mean 'factor'\?\); valid keys: factor, "
                                    r"max_times, min_lr"),
    ({"reduce_rl": {}}, r"unknown remediation 'reduce_rl' \(did you mean 'reduce_lr'\?\); valid with parameters: "
                        r"skip_step, reduce_lr"),
    ({"reduce_lr": {}, "skip_step": {}}, r"a mapping of one remediation to its parameters"),
])
def test_bad_parameters_are_located(action, match):
    import yaml

    text = yaml.safe_dump({"rules": {"loss_spike": {"actions": [action]}}}, default_flow_style=False)
    with pytest.raises(ConfigError, match=match):
        Config.load(text)


@pytest.mark.parametrize("rule, action, why", [
    ("small_updates", "reduce_lr", "its findings do not say that the learning rate is too high; rule types "
                                   "that can: exploding_gradient, loss_spike"),
    ("exploding_gradient", "skip_step", "it needs a verdict at every step, before the update; rule types "
                                        "that can: loss_spike"),
])
def test_a_rule_that_cannot_drive_a_remediation_is_refused(rule, action, why):
    with pytest.raises(ConfigError) as err:
        Config.load({"rules": {rule: {"actions": ["alert", action]}}})
    assert str(err.value) == f"<dict> at 'rules.{rule}.actions.1': rule type '{rule}' cannot {action}: {why}"


@pytest.mark.parametrize("framework", ["keras", "xgboost"])
@pytest.mark.parametrize("action", ["skip_step", "reduce_lr"])
def test_a_callback_that_cannot_carry_a_remediation_out_refuses_it_when_it_is_made(framework, action):
    with pytest.raises(ConfigError, match=rf"rules\.loss_spike\.actions.*cannot carry out {action}; valid here: "
                                          r"alert, stop, raise, checkpoint \("):
        Monitor({"rules": {"loss_spike": {"actions": [action]}}}, framework=framework, log_dir=False)


def test_the_torch_adapters_accept_both():
    m = Monitor(YAML, framework="torch", log_dir=False, remediations=("skip_step", "reduce_lr"))
    assert m.uses("skip_step") and m.uses("reduce_lr")
