"""AlertDispatcher: log and console channels, isolation between channels, counters, close, Monitor use."""

from __future__ import annotations

import logging
import threading

from tripwire.alerts import AlertDispatcher
from tripwire.monitor import Monitor
from tripwire.stats import Sample

from .conftest import body_json, make_finding, wait_until


def summaries(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "tripwire.alerts" and r.getMessage().startswith("tripwire: alerts:")]


def test_log_channel_level_follows_severity(caplog):
    caplog.set_level(logging.DEBUG, logger="my.run")
    d = AlertDispatcher({"log": {"logger": "my.run"}})
    for severity in ("info", "warning", "error"):
        d.send(make_finding(severity=severity, rule=f"r_{severity}"))
    d.close(timeout_s=1)

    records = [r for r in caplog.records if r.name == "my.run"]
    assert [(r.levelno, r.tripwire_finding.rule) for r in records] == [
        (logging.INFO, "r_info"), (logging.WARNING, "r_warning"), (logging.ERROR, "r_error")]
    assert "r_error at step 120 on encoder.act1" in records[2].getMessage()
    assert d.delivered == {"log": 3} and d.undelivered == {"log": 0}


def test_default_config_logs_to_tripwire_logger_without_threads(caplog):
    before = threading.active_count()
    d = AlertDispatcher()
    d.send(make_finding())
    assert threading.active_count() == before  # inline channels only: no worker thread
    d.close()
    assert [r.name for r in caplog.records if "dead_relu" in r.getMessage()] == ["tripwire"]


def test_console_prints_one_readable_line_to_stderr(capsys):
    d = AlertDispatcher({"log": None, "console": {}})
    finding = make_finding(message="weights of fc1\nare NaN")
    d.send(finding)
    d.close(timeout_s=1)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    for part in ("warning", "dead_relu", "step 120", "encoder.act1", "weights of fc1 are NaN", finding.suggestion):
        assert part in lines[0]


def test_a_dead_webhook_does_not_hold_up_email_or_log(hanging_server, smtp_server, caplog):
    server = smtp_server()
    d = AlertDispatcher({"webhook": {"url": f"http://127.0.0.1:{hanging_server.port}/x", "timeout_s": 10},
                         "email": {"smtp": server.address, "to": ["oncall@example.com"]}})
    for step in range(5):
        d.send(make_finding(step=step))
    assert wait_until(lambda: len(server.box.messages) == 5, timeout_s=5)  # while the webhook still hangs
    assert d.pending["webhook"] == 5
    d.close(timeout_s=0.3)

    assert len(server.box.messages) == 5
    assert d.delivered == {"log": 5, "webhook": 0, "email": 5}
    assert d.undelivered == {"log": 0, "webhook": 5, "email": 0}
    [summary] = summaries(caplog)
    assert summary.levelno == logging.WARNING
    assert summary.getMessage() == ("tripwire: alerts: log 5 delivered, 0 undelivered; webhook 0 delivered, "
                                    "5 undelivered (0 dropped: queue full, 0 failed, 5 unsent at close); "
                                    "email 5 delivered, 0 undelivered")


def test_failures_are_logged_once_per_streak(refused_port, caplog):
    d = AlertDispatcher({"log": None, "webhook": {"url": f"http://127.0.0.1:{refused_port}/x", "retries": 0}})
    for step in range(4):
        d.send(make_finding(step=step))
    assert wait_until(lambda: d.failed["webhook"] == 4)  # at close, the first failure would end the channel
    d.close(timeout_s=5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "not delivered" in r.getMessage()]
    assert len(warnings) == 1 and d.failed == {"webhook": 4}
    assert "4 failed" in summaries(caplog)[0].getMessage()


def test_send_never_raises_and_close_is_idempotent(caplog):
    d = AlertDispatcher({"console": {}})
    d.send(object())  # not a Finding: every channel fails, the caller does not notice
    d.close(timeout_s=1)
    d.close(timeout_s=1)
    assert d.failed == {"log": 1, "console": 1} and d.delivered == {"log": 0, "console": 0}
    assert len(summaries(caplog)) == 1


def test_clean_close_logs_one_info_line(caplog):
    caplog.set_level(logging.INFO, logger="tripwire")
    d = AlertDispatcher()
    d.send(make_finding())
    d.close(timeout_s=1)
    [summary] = summaries(caplog)
    assert summary.levelno == logging.INFO
    assert summary.getMessage() == "tripwire: alerts: log 1 delivered, 0 undelivered"


def test_monitor_sends_its_findings_to_the_webhook(hook_server):
    monitor = Monitor({"rules": {"nonfinite": {}}, "log_dir": None,
                       "actions": {"log": None, "webhook": {"url": hook_server.url()}}}, framework="torch")
    decision = monitor.process(Sample(step=7, epoch=0, stats={"loss_nonfinite": {None: 1.0}}))
    monitor.close(timeout_s=5)

    assert decision.stop is not None
    [request] = hook_server.requests
    body = body_json(request)
    assert body["finding"]["rule"] == "nonfinite" and body["finding"]["step"] == 7
    assert "NaN/Inf in the loss at step 7" in body["text"]


def _lone_logger(name: str) -> logging.Logger:
    """A logger whose records reach no handler of the test session (Python's last resort prints them)."""
    logger = logging.getLogger(name)
    logger.propagate, logger.handlers = False, []
    return logger


def test_console_and_log_print_a_finding_once_on_the_terminal(capsys):
    _lone_logger("once.run")
    d = AlertDispatcher({"log": {"logger": "once.run"}, "console": {}})
    d.send(make_finding())
    d.close(timeout_s=1)
    lines = [line for line in capsys.readouterr().err.splitlines() if "dead_relu" in line]
    assert len(lines) == 1


def test_without_the_console_the_log_channel_still_reaches_the_terminal(capsys):
    _lone_logger("alone.run")
    d = AlertDispatcher({"log": {"logger": "alone.run"}})
    d.send(make_finding())
    d.close(timeout_s=1)
    assert sum("dead_relu" in line for line in capsys.readouterr().err.splitlines()) == 1


def test_with_the_console_a_log_file_still_gets_its_record(tmp_path, capsys):
    logger = _lone_logger("file.run")
    handler = logging.FileHandler(tmp_path / "run.log")
    logger.addHandler(handler)
    try:
        d = AlertDispatcher({"log": {"logger": "file.run"}, "console": {}})
        d.send(make_finding())
        d.close(timeout_s=1)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert "dead_relu" in (tmp_path / "run.log").read_text()
    assert sum("dead_relu" in line for line in capsys.readouterr().err.splitlines()) == 1
