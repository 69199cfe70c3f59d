"""Item 4: hostile arguments to the callback constructors.

``tests/test_config_fuzz.py`` fuzzes YAML text and config dicts through ``Config.load``; this
file fuzzes the path a user actually calls, ``LightningTripwire(config, stop_on=..., interval=...,
log_dir=..., strict=..., run_name=...)`` (and ``XGBoostTripwire``), where keyword arguments override the
config. Only a located ``ConfigError`` may escape, and whatever is accepted must be usable: a
positive integer interval, a boolean strict flag, a string log directory.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from figures import check, tally
from tripwire import ConfigError
from tripwire.registry import builtin_rules

RULES = sorted(builtin_rules())
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(-10**12, 10**12),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
                 st.sampled_from(["10", "0", "-1", "1e3", "yes", "true", "nonfinite", "dead_relu", "${HOME}"]),
                 st.binary(max_size=4), st.just(object()))
names = st.one_of(st.sampled_from(RULES + ["dead_relus", "", "nonfinite "]), st.text(max_size=8), junk)
configs = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={
        "interval": junk, "strict": junk, "log_dir": junk,
        "rules": st.one_of(junk, st.dictionaries(st.sampled_from(RULES), st.one_of(st.none(), st.just({})),
                                                 max_size=4))}),
    st.sampled_from(["interval: 5\n", "rules: {nonfinite: {}}\n", "rules: null\n", "[1, 2]\n", "{\n",
                     "rules:\n  dead_relu: {actions: [stop]}\n"]),
)
kwargs = st.fixed_dictionaries({}, optional={
    "stop_on": st.one_of(names, st.lists(names, max_size=3), st.tuples(names), st.sets(st.sampled_from(RULES))),
    "interval": junk, "log_dir": junk, "strict": junk, "run_name": junk,
})
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_located_config_errors(make, config, options) -> None:
    tally("configs.constructor_examples", 1)
    try:
        cb = make(config, **options)
    except ConfigError as exc:
        assert exc.source and str(exc).startswith(exc.source), exc
        assert exc.path or exc.line is not None or "must be a mapping" in exc.problem, exc
        return
    except BaseException:
        check("configs.non_config_errors", tally("configs.non_config_errors", 1))
        raise
    tally("configs.non_config_errors", 0)
    cfg = cb.monitor.config
    assert type(cfg.interval) is int and cfg.interval >= 1, cfg.interval
    assert type(cfg.strict) is bool and (cfg.log_dir is None or type(cfg.log_dir) is str)
    run_name = cb.monitor.run_name
    assert run_name is None or (type(run_name) is str and "/" not in run_name), run_name


@SETTINGS
@given(configs, kwargs)
def test_lightning_constructor_accepts_or_refuses_with_a_located_error(config, options):
    pytest.importorskip("lightning")
    from tripwire import LightningTripwire

    only_located_config_errors(LightningTripwire, config, options)


@SETTINGS
@given(configs, kwargs)
def test_xgboost_constructor_accepts_or_refuses_with_a_located_error(config, options):
    pytest.importorskip("xgboost")
    from tripwire import XGBoostTripwire

    only_located_config_errors(XGBoostTripwire, config, options)


@pytest.mark.parametrize("options, where", [
    ({"interval": 0}, "interval"), ({"interval": -5}, "interval"), ({"interval": 2.5}, "interval"),
    ({"interval": "ten"}, "interval"), ({"strict": "maybe"}, "strict"), ({"log_dir": 123}, "log_dir"),
    ({"stop_on": "dead_relus"}, "stop_on"), ({"stop_on": [1]}, "stop_on"), ({"stop_on": 5}, "stop_on"),
    ({"run_name": "runs/a"}, "run_name"), ({"run_name": 3}, "run_name"),
])
def test_bad_keyword_values_name_the_keyword(options, where):
    pytest.importorskip("lightning")
    from tripwire import LightningTripwire

    with pytest.raises(ConfigError) as info:
        LightningTripwire(None, **options)
    assert info.value.path == where


def test_a_single_rule_name_as_stop_on_is_one_name():
    pytest.importorskip("lightning")
    from tripwire import LightningTripwire

    cb = LightningTripwire(None, stop_on="dead_relu", log_dir=False)
    assert "stop" in cb.monitor.engine.actions["dead_relu"]
