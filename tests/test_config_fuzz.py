"""Hostile configs: whatever YAML text or dict comes in, only a located ConfigError escapes."""

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripwire import Config, ConfigError
from tripwire.registry import builtin_rules

KEYS = ["interval", "log_dir", "strict", "rules", "actions", "metrics", "type", "actions", "enabled",
        "severity", "threshold", "threshold_layer", "patience", "window", "on", "url", "webhook", "email",
        "console", "log", "to", "smtp", "ratio", "min_delta", "max_norm", "factor", "samples"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["${NOPE}", "${HOME}", "stop", "alert", "nan", "-1"]))
keys = st.one_of(st.sampled_from(KEYS + sorted(builtin_rules())), st.text(max_size=8), st.integers(0, 3))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=20)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_only_located_config_errors(data):
    try:
        Config.load(data)
    except ConfigError as exc:
        assert exc.source and str(exc).startswith(exc.source)
        assert exc.path or exc.line is not None or "must be a mapping" in exc.problem


@SETTINGS
@given(st.dictionaries(keys, values, max_size=6))
def test_random_dicts(data):
    check_only_located_config_errors(data)


@SETTINGS
@given(st.fixed_dictionaries({"rules": st.dictionaries(st.sampled_from(sorted(builtin_rules()) + ["x"]),
                                                       st.dictionaries(keys, values, max_size=4), max_size=4)}))
def test_random_rule_sections(data):
    check_only_located_config_errors(data)


@SETTINGS
@given(st.dictionaries(keys, values, max_size=6))
def test_random_yaml_text(data):
    text = yaml.safe_dump(data, default_flow_style=False)
    check_only_located_config_errors(text + "\n")


@SETTINGS
@given(st.lists(st.sampled_from(list("ab:{}[]-!&*|>'\"#%@`\n ,?") + ["!!python/object:os.system ", "&x ",
                                                                            "*x", "rules", "interval"]),
                max_size=30).map("".join))
def test_random_yaml_garbage(text):
    check_only_located_config_errors(text + "\n")


def test_recursive_alias_is_an_error_not_a_crash():
    check_only_located_config_errors("rules: &a\n  nonfinite: *a\n")
    check_only_located_config_errors("a: &x [*x]\n")


def test_object_tags_never_construct(tmp_path):
    marker = tmp_path / "pwned"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/name:os.system"):
        text = f"interval: {tag} ['touch {marker}']\n"
        try:
            Config.load(text)
        except ConfigError as exc:
            assert exc.line == 1
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    try:
        Config.load("\n".join(lines) + "\n")
    except ConfigError as exc:
        assert "more than" in exc.problem or "unknown key" in exc.problem


def test_a_complex_mapping_key_is_a_located_error_not_a_crash():
    check_only_located_config_errors("? ?\n")
    check_only_located_config_errors("? [a, b]\n: 1\n")
    with pytest.raises(ConfigError, match="unhashable key"):
        Config.load("? [a, b]\n: 1\n")
