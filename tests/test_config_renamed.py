"""Renamed rule parameters: a former name in a user's config keeps working, with a warning that
says where (file, line, key path) and what to write instead; giving both names is an error."""

import logging
import textwrap

import pytest

from tripwire import Config, ConfigError
from tripwire.engine import Engine
from tripwire.registry import builtin_rules

RENAMED = sorted((kind, former, current) for kind, cls in builtin_rules().items()
                 for former, current in cls.Params.renamed.items())


def test_the_renames_are_the_ones_documented():
    assert RENAMED == [("class_imbalance", "samples", "min_samples"),
                       ("classifier_confusion", "delta", "min_delta"),
                       ("not_normalized", "samples", "min_samples"),
                       ("overtraining", "delta", "min_delta"),
                       ("unchanged_tensor", "num_steps", "patience")]
    for kind, former, current in RENAMED:
        fields = builtin_rules()[kind].Params.model_fields
        assert current in fields and former not in fields


def test_a_former_name_in_a_yaml_file_works_and_warns_where_it_is(tmp_path, caplog):
    path = tmp_path / "tripwire.yaml"
    path.write_text(textwrap.dedent("""\
        rules:
          unchanged_tensor:
            num_steps: 5
        """))
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        config = Config.load(path)
    assert config.rules["unchanged_tensor"].params == {"patience": 5}
    assert Engine(config).rules["unchanged_tensor"].params.patience == 5
    (record,) = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.name == "tripwire"
    assert record.getMessage() == (f"tripwire: {path}:3:5 at 'rules.unchanged_tensor.num_steps': "
                                   "'num_steps' is deprecated: use 'patience' instead")


@pytest.mark.parametrize(("kind", "former", "current"), RENAMED)
def test_every_former_name_means_the_current_one(kind, former, current, caplog):
    value = 7 if current != "min_delta" else 0.05
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        old = Config.load({"rules": {kind: {former: value}}})
    assert old.rules == Config.load({"rules": {kind: {current: value}}}).rules
    assert f"<dict> at 'rules.{kind}.{former}': '{former}' is deprecated: use '{current}' instead" in caplog.text


def test_the_current_name_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        Config.load({"rules": {"unchanged_tensor": {"patience": 5}, "overtraining": {"min_delta": 0.02}}})
    assert "deprecated" not in caplog.text


def test_both_names_are_an_error_at_the_former_one(tmp_path):
    path = tmp_path / "tripwire.yaml"
    path.write_text("rules:\n  overtraining:\n    min_delta: 0.02\n    delta: 0.05\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert (err.value.path, err.value.line) == ("rules.overtraining.delta", 4)
    assert "'delta' is the former name of 'min_delta': give only 'min_delta'" in str(err.value)


def test_a_bad_value_under_a_former_name_is_located_where_the_file_has_it(tmp_path):
    path = tmp_path / "tripwire.yaml"
    path.write_text("rules:\n  unchanged_tensor:\n    num_steps: 0\n")
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert (err.value.path, err.value.line) == ("rules.unchanged_tensor.num_steps", 3)
    assert "greater than or equal to 1" in str(err.value)


def test_python_code_gets_a_deprecation_warning():
    params_cls = builtin_rules()["unchanged_tensor"].Params
    with pytest.warns(DeprecationWarning, match="'num_steps' is deprecated: use 'patience' instead"):
        params = params_cls(num_steps=4)
    assert params == params_cls(patience=4)
    with pytest.raises(ValueError, match="give only 'patience'"):
        params_cls(num_steps=4, patience=5)
