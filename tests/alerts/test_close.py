"""AlertDispatcher.close at the end of training: quick for dead endpoints, complete for healthy ones.

Before close, a failing channel retries with backoff on its own thread (training never waits).
At close the wait is the end of ``fit()``: each queued alert gets one attempt, a channel whose
last delivery failed is abandoned at once, and one whose delivery hangs after at most 1 s.
"""

from __future__ import annotations

import logging
import time

import pytest

from tripwire.alerts import AlertDispatcher
from tripwire.alerts.dispatcher import CLOSE_STALL_S
from tripwire.monitor import Monitor
from tripwire.stats import Sample

from .conftest import SECRET, make_finding, wait_until


def webhook(url: str, **options) -> AlertDispatcher:
    return AlertDispatcher({"log": None, "webhook": {"url": url, **options}, "rate_limit": None})  # every alert queued


def abandoned(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "abandoned at close" in r.getMessage()]


def timed_close(d: AlertDispatcher, timeout_s: float = 5.0) -> float:
    start = time.monotonic()
    d.close(timeout_s=timeout_s)
    return time.monotonic() - start


@pytest.mark.parametrize("endpoint", ["server_error", "refused"])
def test_a_delivery_failing_at_close_ends_the_channel_without_retries(endpoint, hook_server, refused_port, caplog):
    hook_server.statuses = [500]
    port = hook_server.port if endpoint == "server_error" else refused_port
    d = webhook(f"http://127.0.0.1:{port}/hooks/{SECRET}")  # default retries (2) and backoff (0.5 s, 1 s)
    for step in range(5):
        d.send(make_finding(step=step))
    assert wait_until(lambda: d.pending["webhook"] == 5 and (endpoint == "refused" or hook_server.requests))
    time.sleep(0.1)  # the first delivery now waits to retry

    closing = timed_close(d)

    print(f"{endpoint}: close took {closing:.3f} s")
    assert closing < 0.5  # was 5 s: the retries of each queued alert ran until the limit
    assert d.failed == {"webhook": 1} and d.unsent == {"webhook": 4} and d.delivered == {"webhook": 0}
    if endpoint == "server_error":
        assert len(hook_server.requests) == 1  # no retry once close began
    [message] = abandoned(caplog)
    assert message.startswith("tripwire: webhook: 4 alerts abandoned at close (a delivery failed at close")
    assert ("HTTP 500" if endpoint == "server_error" else "ConnectionRefusedError") in message
    assert SECRET not in caplog.text


def test_a_channel_whose_last_delivery_failed_is_not_tried_again_at_close(hanging_server, caplog):
    d = webhook(f"http://127.0.0.1:{hanging_server.port}/hooks/{SECRET}", timeout_s=0.3, retries=0)
    d.send(make_finding(step=1))
    assert wait_until(lambda: d.failed["webhook"] == 1)  # the first alert timed out: the channel is failing
    for step in range(2, 7):
        d.send(make_finding(step=step))

    closing = timed_close(d)

    print(f"close after a failure took {closing:.3f} s")
    assert closing < 0.2  # was 1.5 s: every queued alert waited for its own 0.3 s timeout
    assert d.failed == {"webhook": 1} and d.unsent == {"webhook": 5}
    [message] = abandoned(caplog)
    assert "5 alerts abandoned at close (its last delivery failed; last error: " in message
    assert "no answer within 0.3 s" in message


def test_a_hanging_delivery_holds_close_for_at_most_the_stall_limit(hanging_server, caplog):
    d = webhook(f"http://127.0.0.1:{hanging_server.port}/hooks/{SECRET}", timeout_s=10)
    for step in range(3):
        d.send(make_finding(step=step))
    assert wait_until(lambda: len(hanging_server.accepted) == 1)

    closing = timed_close(d, timeout_s=5.0)

    print(f"hanging endpoint: close took {closing:.3f} s")
    assert closing < CLOSE_STALL_S + 0.3  # was 5 s, the whole limit
    assert d.unsent == {"webhook": 3} and d.delivered == {"webhook": 0}
    [message] = abandoned(caplog)
    assert message == f"tripwire: webhook: 3 alerts abandoned at close (a delivery was still in flight after " \
                      f"{CLOSE_STALL_S:g} s)"


def test_a_healthy_endpoint_gets_every_queued_alert_at_close(hook_server, caplog):
    caplog.set_level(logging.INFO, logger="tripwire")
    hook_server.delay_s = 0.3  # slow, but each answer comes within the stall limit
    d = webhook(hook_server.url())
    for step in range(6):
        d.send(make_finding(step=step))

    closing = timed_close(d)

    assert d.delivered == {"webhook": 6} and d.undelivered == {"webhook": 0}
    assert sorted(int(r["body"].split(b'"step": ')[1].split(b",")[0]) for r in hook_server.requests) == list(range(6))
    assert 6 * 0.3 <= closing < 5.0  # 1.8 s in all: the stall limit applies per delivery, not to the close
    assert abandoned(caplog) == [] and not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_time_limit_still_bounds_a_slow_healthy_endpoint(hook_server, caplog):
    hook_server.delay_s = 0.2
    d = webhook(hook_server.url())
    for step in range(20):
        d.send(make_finding(step=step))

    closing = timed_close(d, timeout_s=0.5)

    assert 0.45 <= closing < 0.8
    assert d.delivered["webhook"] + d.unsent["webhook"] == 20 and d.unsent["webhook"] >= 15
    [message] = abandoned(caplog)
    assert "the wait for queued alerts at close is limited to 0.5 s" in message


def test_monitor_close_after_a_fit_with_a_dead_webhook_is_quick(refused_port):
    """What a callback does at the end of fit(): Monitor.close() with its default limit."""
    monitor = Monitor({"rules": {"nonfinite": {"rearm_after": 1}}, "log_dir": None,
                       "actions": {"log": None, "webhook": {"url": f"http://127.0.0.1:{refused_port}/x"}}},
                      framework="torch")
    for step in range(10):  # fires, clears, fires ...: 5 alerts
        monitor.process(Sample(step=step, epoch=0, stats={"loss_nonfinite": {None: float(step % 2 == 0)}}))
    alerts = monitor._alerts

    start = time.monotonic()
    monitor.close(print_summary=False)
    closing = time.monotonic() - start

    print(f"Monitor.close with a refused webhook took {closing:.3f} s")
    assert closing < 0.5  # was 5 s
    assert alerts.delivered == {"webhook": 0} and alerts.undelivered == {"webhook": 5}
