"""The fail-open guard: a failing part is switched off once, with one warning; strict re-raises."""

import logging

import pytest

from tripwire import Monitor
from tripwire.failopen import FailOpen


def test_a_failing_part_is_switched_off_once_and_named_in_one_warning(caplog):
    guard = FailOpen()
    calls = []

    def probe():
        calls.append(1)
        raise AttributeError("property 'activation' of 'LSTM' object has no setter")

    with caplog.at_level(logging.WARNING, logger="tripwire"):
        assert guard.call("activation probe on layer 'lstm'", probe, fallback="off") == "off"
        assert guard.call("activation probe on layer 'lstm'", probe, fallback="off") == "off"
    assert calls == [1]  # never tried again
    assert not guard.ok("activation probe on layer 'lstm'")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "activation probe on layer 'lstm'" in warnings[0].getMessage()
    assert "has no setter" in warnings[0].getMessage()


def test_parts_fail_independently_and_success_passes_the_value_through():
    guard = FailOpen()
    with guard.attempt("optimizer hook"):
        raise RuntimeError("boom")
    assert guard.call("gradient statistics", lambda x: x * 2, 21) == 42
    assert guard.ok("gradient statistics") and not guard.ok("optimizer hook")
    assert guard.disabled == {"optimizer hook": "RuntimeError: boom"}


def test_strict_reraises_the_original_exception():
    guard = FailOpen(strict=True)
    with pytest.raises(KeyError):
        with guard.attempt("reading the booster"):
            raise KeyError("gain")
    assert guard.disabled == {}


def test_the_monitor_guard_follows_strict_and_the_summary_names_what_was_switched_off(capsys):
    assert Monitor({"strict": True}, log_dir=False).guard.strict
    assert not Monitor(None, log_dir=False).guard.strict
    monitor = Monitor(None, log_dir=False, framework="torch")
    monitor.guard.call("forward hook on module 'encoder'", lambda: 1 / 0)
    monitor.open()
    monitor.close()
    out = capsys.readouterr().out
    assert "switched off after an internal error: forward hook on module 'encoder' (ZeroDivisionError" in out
