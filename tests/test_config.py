"""Config loading: the happy paths and every kind of located error."""

import sys
import textwrap
import uuid

import pytest

from tripwire import Config, ConfigError


def write(tmp_path, text):
    path = tmp_path / "tripwire.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_full_example_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK", "http://127.0.0.1:9/hook?token=s3cret")
    path = write(tmp_path, """\
        interval: 5
        log_dir: runs
        rules:
          nonfinite: {actions: [alert, stop]}
          nan_again:
            type: nonfinite
            severity: warning
        actions:
          webhook: {url: "${HOOK}", timeout_s: 2}
          console: {}
        """)
    cfg = Config.load(path)
    assert cfg.interval == 5 and cfg.log_dir == "runs" and cfg.source == str(path)
    assert cfg.rules["nonfinite"].actions == ("alert", "stop")
    assert cfg.rules["nan_again"].type == "nonfinite" and cfg.rules["nan_again"].severity == "warning"
    assert cfg.actions.webhook.url.endswith("token=s3cret") and cfg.actions.webhook.timeout_s == 2


def test_same_shape_from_dict_yaml_text_and_config():
    data = {"interval": 3, "rules": {"nonfinite": {"actions": ["stop"]}}}
    a = Config.load(data)
    b = Config.load("interval: 3\nrules:\n  nonfinite: {actions: [stop]}\n")
    assert a.model_dump() == b.model_dump()
    assert Config.load(a) is a


def test_none_means_default_rule_set():
    specs = Config.load(None).rule_specs()
    assert "nonfinite" in specs
    from tripwire.registry import builtin_rules

    assert set(specs) == {k for k, c in builtin_rules().items() if c.in_default_set}


def test_disabled_rule_is_dropped():
    cfg = Config.load({"rules": {"nonfinite": {"enabled": False}}})
    assert cfg.rule_specs() == {}


def test_misspelled_rule_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, """\
        interval: 10
        rules:
          nonfinte: {}
        """)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    e = err.value
    assert (e.source, e.line, e.path) == (str(path), 3, "rules.nonfinte")
    assert "did you mean 'nonfinite'" in str(e) and str(path) + ":3" in str(e)


def test_unknown_top_level_key_lists_valid_keys(tmp_path):
    path = write(tmp_path, "interval: 10\nintreval_steps: 3\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert err.value.line == 2 and "unknown key 'intreval_steps'" in str(err.value)
    assert "valid keys:" in str(err.value) and "interval" in str(err.value)


def test_wrong_type_names_value_received(tmp_path):
    path = write(tmp_path, "interval: often\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert err.value.path == "interval" and "'often'" in str(err.value) and err.value.line == 1


def test_bad_value_in_nested_channel():
    with pytest.raises(ConfigError) as err:
        Config.load({"actions": {"webhook": {"url": "http://x", "timeout_s": -1}}})
    assert err.value.path == "actions.webhook.timeout_s" and "-1" in str(err.value)


def test_unknown_rule_parameter_lists_the_rules_parameters():
    with pytest.raises(ConfigError) as err:
        Config.load({"rules": {"nonfinite": {"treshold": 3}}})
    assert err.value.path == "rules.nonfinite.treshold" and "actions" in str(err.value)


def test_unknown_action_suggests(tmp_path):
    path = write(tmp_path, "rules:\n  nonfinite:\n    actions: [alert, stpo]\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert err.value.path == "rules.nonfinite.actions.1" and "did you mean 'stop'" in str(err.value)
    assert err.value.line == 3


def test_invalid_yaml_is_located(tmp_path):
    path = write(tmp_path, "rules:\n  nonfinite: {actions: [alert\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert err.value.line is not None and "invalid YAML" in str(err.value)


def test_yaml_tags_cannot_construct_objects(tmp_path):
    path = write(tmp_path, "interval: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        Config.load(path)


def test_missing_env_var_is_named():
    with pytest.raises(ConfigError) as err:
        Config.load({"actions": {"webhook": {"url": "${TRIPWIRE_TEST_UNSET_VAR}"}}})
    assert "TRIPWIRE_TEST_UNSET_VAR" in str(err.value) and err.value.path == "actions.webhook.url"


def test_env_default_is_used():
    cfg = Config.load({"log_dir": "${TRIPWIRE_TEST_UNSET_VAR:-fallback}"})
    assert cfg.log_dir == "fallback"


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        Config.load("does/not/exist.yaml")


def user_module(tmp_path, monkeypatch, source):
    """The name of a new importable module with ``source`` as its code."""
    name = f"user_code_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


ACTION_FORM = "valid: alert, stop, raise, checkpoint, skip_step, reduce_lr, rollback, or 'package.module:function'"


def action_error(tmp_path, ref):
    """The ConfigError of a file whose nonfinite rule has the actions ``[alert, <ref>]``."""
    path = write(tmp_path, f"""\
        interval: 5
        rules:
          nonfinite:
            actions: [alert, "{ref}"]
        """)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    e = err.value
    assert (e.source, e.line, e.path) == (str(path), 4, "rules.nonfinite.actions.1")
    assert str(e).startswith(f"{path}:4:") and str(e).endswith(ACTION_FORM)
    return e


def test_action_whose_module_is_not_found(tmp_path):
    e = action_error(tmp_path, "no_such_pkg.hooks:notify")
    assert "cannot load action 'no_such_pkg.hooks:notify': module 'no_such_pkg.hooks' not found" in e.problem


def test_action_whose_module_has_no_such_function_suggests_one(tmp_path):
    e = action_error(tmp_path, "json:laods")
    assert "module 'json' has no attribute 'laods' (did you mean 'loads'?)" in e.problem


def test_action_that_is_not_callable(tmp_path):
    assert "cannot load action 'math:pi': it is not callable (got 3.14159" in action_error(tmp_path, "math:pi").problem


def test_action_that_is_not_of_the_form(tmp_path):
    assert "'json:' is not of the form 'package.module:name'" in action_error(tmp_path, "json:").problem


def test_action_whose_module_raises_on_import(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, "raise RuntimeError('no GPU here')\n")
    e = action_error(tmp_path, f"{name}:notify")
    assert f"importing module '{name}' raised RuntimeError: no GPU here" in e.problem


def test_action_whose_module_misses_a_dependency_is_not_reported_as_missing(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, "import no_such_dependency\n")
    e = action_error(tmp_path, f"{name}:notify")
    assert f"importing module '{name}' raised ModuleNotFoundError: No module named 'no_such_dependency'" in e.problem


def test_action_function_is_resolved_when_the_config_loads(tmp_path, monkeypatch):
    name = user_module(tmp_path, monkeypatch, "def notify(finding):\n    pass\n")
    cfg = Config.load({"rules": {"nonfinite": {"actions": ["alert", f"{name}:notify"]}}})
    assert name in sys.modules and cfg.rules["nonfinite"].actions == ("alert", f"{name}:notify")
    assert cfg.user_actions() == {f"{name}:notify": sys.modules[name].notify}


RULE_FORM = "valid: 'package.module:ClassName' naming a subclass of tripwire.Rule, or a built-in rule type"


@pytest.mark.parametrize("ref, problem", [
    ("no_such_pkg.rules:Mine", "module 'no_such_pkg.rules' not found (No module named 'no_such_pkg')"),
    ("tripwire.rules.nonfinite:Nonfinit", "module 'tripwire.rules.nonfinite' has no attribute 'Nonfinit' "
                                          "(did you mean 'Nonfinite'?)"),
    ("json:dumps", "'json:dumps' is not a subclass of tripwire.Rule (got a function)"),
])
def test_custom_rule_reference_that_does_not_resolve(tmp_path, ref, problem):
    path = write(tmp_path, f"rules:\n  mine:\n    type: {ref}\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    e = err.value
    assert (e.source, e.line, e.path) == (str(path), 3, "rules.mine.type")
    assert e.problem == f"cannot load rule '{ref}': {problem}; {RULE_FORM}"


def test_rules_must_be_a_mapping():
    with pytest.raises(ConfigError, match="must map rule names"):
        Config.load({"rules": ["nonfinite"]})


def test_yaml_key_on_is_the_parameter_not_a_boolean(tmp_path):
    path = write(tmp_path, """\
        rules:
          tiny_weights:
            type: low_variance
            on: gradients
            min: 1.0e-16
        """)
    assert Config.load(path).rules["tiny_weights"].params["on"] == "gradients"
