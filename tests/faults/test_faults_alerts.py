"""Item 2: dead alert channels never slow down or break a real Lightning fit.

A user rule (``user_rules:Flapping``) fires every other sampled step, so each fit sends dozens
of alerts. The channel is a webhook that hangs, one that answers 500, one whose port refuses
connections, or an SMTP server that is down. Fits of every variant are interleaved with fits
whose rule fires as often but has no alert channel, several rounds; the best *training loop*
time (``on_train_start`` to ``on_train_end``) of each variant is compared with the best of the
fits without alerts (on a shared machine a loop of the same work takes 0.15 to 1.2 s: noise
only adds time, so the minimum is the stable estimate; a channel that held up the loop would
slow every round). What happens after
the loop, the wait for queued alerts at close (a failing channel is abandoned at once, a
hanging delivery after 1 s, 5 s at most in all), is measured in the first round; later rounds
shorten its limit to 0.2 s to keep the suite fast (it is idle time after the loop and does not
change what the loop measures).
"""

from __future__ import annotations

import functools
import logging
import re
import statistics
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

import lightning.pytorch as pl

import fault_servers
from figures import check
from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire

pytestmark = pytest.mark.torch

ROUNDS = 5
STEPS = 120
QUEUE = 8
CHANNELS = ("webhook_hang", "webhook_500", "webhook_refused", "smtp_down")
SUMMARY = re.compile(r"tripwire: alerts: (\w+) (\d+) delivered, (\d+) undelivered")


class Clock(pl.Callback):
    """Times the training loop, and each alert's hand-over to the dispatcher on the training thread;
    watches the alert queues of a tripwire callback."""

    def __init__(self, tw) -> None:
        self.tw, self.max_queued, self.sends = tw, 0, []

    def on_train_start(self, trainer, pl_module) -> None:
        self.tw.monitor.open()  # idempotent: the dispatcher exists now, so its send can be timed
        send = self.tw.monitor._alerts.send

        def timed(finding) -> None:
            started = time.perf_counter()
            send(finding)
            self.sends.append(time.perf_counter() - started)

        self.tw.monitor._alerts.send = timed
        self.start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        alerts = self.tw.monitor._alerts
        if alerts is not None:
            self.max_queued = max([self.max_queued, *alerts.pending.values()])

    def on_train_end(self, trainer, pl_module) -> None:
        self.loop_s = time.perf_counter() - self.start


@pytest.fixture(scope="module")
def channels():
    hang, hang_port = fault_servers.start("hang")
    error, error_port = fault_servers.start("500")
    refused = fault_servers.refused_port()
    yield {
        "none": {"log": None},
        "webhook_hang": {"log": None, "webhook": {"url": f"http://127.0.0.1:{hang_port}/hook", "timeout_s": 5}},
        "webhook_500": {"log": None, "webhook": {"url": f"http://127.0.0.1:{error_port}/hook"}},
        "webhook_refused": {"log": None, "webhook": {"url": f"http://127.0.0.1:{refused}/hook"}},
        "smtp_down": {"log": None, "email": {"smtp": f"127.0.0.1:{refused}", "to": ["oncall@example.com"]}},
    }
    for proc in (hang, error):
        proc.kill()
        proc.wait()


def one_fit(actions: dict, caplog: pytest.LogCaptureFixture, close_s: float | None = None) -> dict:
    """One fit; ``close_s`` shortens the wait for queued alerts at the end (after the loop)."""
    torch.manual_seed(0)
    caplog.clear()
    # re-armed at every clear and never rate-limited: every firing reaches the channel under test
    config = {"interval": 1, "rules": {"flap": {"type": "user_rules:Flapping", "actions": ["alert"], "rearm_after": 1}},
              "actions": {**actions, "queue_size": QUEUE, "rate_limit": None}}
    cb = tripwire(config)
    if close_s is not None:
        cb.monitor.close = functools.partial(cb.monitor.close, timeout_s=close_s)
    clock = Clock(cb)
    tr = trainer([cb, clock], max_steps=STEPS)
    started = time.perf_counter()
    tr.fit(Task(mlp()), loader(*blobs(n=512)))  # an exception here is a failure of the test
    total = time.perf_counter() - started
    summary = [m.groups() for r in caplog.records if (m := SUMMARY.search(r.getMessage()))]
    return {"loop": clock.loop_s, "after": total - clock.loop_s, "sends": clock.sends, "alerts": len(cb.findings),
            "steps": tr.global_step, "summary": summary, "max_queued": clock.max_queued,
            "warned": any(r.levelno == logging.WARNING and "not delivered" in r.getMessage() for r in caplog.records)}


def test_dead_channels_cost_the_training_loop_nothing(channels, caplog):
    caplog.set_level(logging.INFO, logger="tripwire")
    runs: dict[str, list[dict]] = {name: [] for name in channels}
    for round_ in range(ROUNDS):  # interleaved, so a load spike on the machine hits every variant alike
        for name, actions in channels.items():
            runs[name].append(one_fit(actions, caplog, close_s=None if round_ == 0 else 0.2))
    base = min(r["loop"] for r in runs["none"])  # best of the rounds: scheduling noise only adds time
    check("alerts.alerts_per_run", min(r["alerts"] for r in runs["none"]))
    for name in CHANNELS:
        fits = runs[name]
        assert all(r["steps"] == STEPS for r in fits), "a dead channel cut training short"
        if name != "webhook_hang":  # a hanging delivery never completes: it is counted as unsent at close
            assert fits[0]["warned"], "the first failed delivery is logged"
        lost = 0
        for r in fits:
            [(_channel, delivered, undelivered)] = r["summary"]  # one summary line per fit, with the count
            lost = max(lost, r["alerts"] - int(delivered) - int(undelivered))
            assert int(undelivered) == r["alerts"] and int(delivered) == 0
        check(f"alerts.{name}.lost_unreported", lost)
        check(f"alerts.{name}.max_queued_over_limit", max(r["max_queued"] for r in fits) - (QUEUE + 1))
        check(f"alerts.{name}.close_wait_s", fits[0]["after"])  # the only fit with the real wait at close
        check(f"alerts.{name}.send_median_ms", 1000 * statistics.median(t for r in fits for t in r["sends"]))
        check(f"alerts.{name}.loop_ratio", min(r["loop"] for r in fits) / base)
