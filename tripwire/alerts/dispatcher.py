"""`AlertDispatcher`: sends findings to the configured channels without ever holding up training.

Inline channels (log, console) run on the caller's thread: they are as cheap as any log line.
Every other channel (webhook, e-mail) gets a bounded queue and a daemon thread of its own, so a
slow or dead server delays only its own alerts. :meth:`AlertDispatcher.send` only appends to
those queues; when one is full the alert is dropped for that channel and counted.

Each rule gets at most ``rate_limit.alerts`` alerts per ``rate_limit.window_s`` (default 5 per
hour), the same on every channel; what is held back is told in one summary alert per rule and
window (:mod:`tripwire.alerts.rate_limit`), also at close.

At the end of training :meth:`AlertDispatcher.close` delivers what is still queued, but only
what can still succeed: from then on each alert gets one attempt (no retries, no backoff), and
a channel is abandoned (its queue counted as unsent, with one warning saying why) as soon as
its last delivery failed, or a delivery has been in flight for ``stall_s`` (1 s), or the total
``timeout_s`` is up. A healthy endpoint still receives every queued alert; a dead one costs the
end of training next to nothing.

Example:
    >>> from tripwire.finding import Finding
    >>> d = AlertDispatcher({"log": {"logger": "doc.alerts"}})
    >>> d.send(Finding(rule="nonfinite", kind="nonfinite", step=3, epoch=0, severity="error", subject="loss",
    ...                value=1.0, threshold=0.0, message="NaN/Inf in the loss at step 3",
    ...                suggestion="lower the learning rate"))
    >>> d.close(timeout_s=1.0)
    >>> d.delivered, d.undelivered
    ({'log': 1}, {'log': 0})
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tripwire.alerts.channel import Channel, DeliveryError
from tripwire.alerts.console import ConsoleChannel
from tripwire.alerts.email_channel import EmailChannel
from tripwire.alerts.log_channel import LogChannel
from tripwire.alerts.rate_limit import RateLimiter
from tripwire.alerts.webhook import WebhookChannel
from tripwire.config import ChannelsConfig

log = logging.getLogger("tripwire.alerts")

CLOSE_STALL_S = 1.0  # at close, a delivery in flight for this long ends its channel's wait
_CLOSE_GRACE_S = 0.05  # ... but not before a delivery waiting to retry has seen the abort and ended


def build_channels(config: ChannelsConfig, step_word: str = "step") -> list[Channel]:
    """The channels ``config`` enables, inline ones first; their text calls a step ``step_word``."""
    built: list[Channel] = []
    if config.log is not None:
        built.append(LogChannel(config.log, console=config.console is not None, step_word=step_word))
    if config.console is not None:
        built.append(ConsoleChannel(config.console, step_word=step_word))
    if config.webhook is not None:
        built.append(WebhookChannel(config.webhook, step_word=step_word))
    if config.email is not None:
        built.append(EmailChannel(config.email, step_word=step_word))
    return built


def _attempt(channel: Channel, finding: Any, abort: threading.Event) -> str | None:
    """Deliver once; the error text (safe to log), or None on success."""
    try:
        channel.deliver(finding, abort)
    except DeliveryError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken channel must never reach the training loop
        return f"{channel.name}: {type(exc).__name__}: {exc}"
    return None


class _Lane:
    """One queued channel: a bounded deque and the daemon thread that drains it.

    ``abandoned`` is set at close when waiting for the channel is pointless; the worker then
    stops, and the result of a delivery still in flight is not counted (it was counted as unsent).
    """

    def __init__(self, channel: Channel, size: int, dispatcher: AlertDispatcher) -> None:
        self.channel, self.size, self.dispatcher = channel, size, dispatcher
        self.items: deque = deque()
        self.in_flight = 0
        self.started = 0.0  # time.monotonic() when the delivery in flight began
        self.closing = False
        self.abandoned = False
        self.running = True
        self.ready = threading.Condition(dispatcher._lock)  # one lock guards queues and counters
        self.thread = threading.Thread(target=self._run, name=f"tripwire-alerts-{channel.name}", daemon=True)
        self.thread.start()

    @property
    def busy(self) -> bool:
        """Whether close still has something to wait for on this lane (lock held)."""
        return not self.abandoned and self.running and bool(self.items or self.in_flight)

    def _run(self) -> None:
        d = self.dispatcher
        while True:
            with self.ready:
                while not self.items and not self.closing:
                    self.ready.wait()
                if not self.items or self.abandoned:
                    self.running = False
                    d._progress.notify_all()
                    return
                finding = self.items.popleft()
                self.in_flight, self.started = 1, time.monotonic()
                d._progress.notify_all()  # a closing dispatcher times this delivery from now
            d._finish(self.channel.name, finding, _attempt(self.channel, finding, d._abort), self)


class AlertDispatcher:
    """Delivers findings to the log, console, webhook and e-mail channels of a ``ChannelsConfig``.

    Args:
        config: the ``actions`` section of the configuration (a ``ChannelsConfig``, a dict or None
            for the default: the ``tripwire`` logger only).
        step_word: what the alerts call a step (``round`` for XGBoost; :mod:`tripwire.wording`).
        clock: wall-clock seconds for the rate limit's windows (tests pass their own).

    Counters (dicts keyed by channel name): :attr:`delivered`, :attr:`dropped` (queue full),
    :attr:`failed` (delivery failed, after retries), :attr:`unsent` (still queued or in flight
    when :meth:`close` gave up) and :attr:`undelivered`, the sum of the last three;
    :attr:`held_back`: findings the rate limit did not alert (each counted in a summary alert).
    """

    def __init__(self, config: ChannelsConfig | dict | None = None, *, step_word: str = "step",
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(config, ChannelsConfig):
            config = ChannelsConfig.model_validate(config or {})
        self.config = config
        self.channels = build_channels(config, step_word)
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)  # a queued delivery ended or a lane stopped
        self._abort = threading.Event()  # set when close begins: no more retries
        self._closed = False  # no more alerts accepted
        self._final = False  # counters frozen: late results of abandoned deliveries are ignored
        names = [c.name for c in self.channels]
        self._delivered, self._failed, self._dropped, self._unsent = ({n: 0 for n in names} for _ in range(4))
        self._failing: dict[str, str] = {}  # channel -> the error of its last (failed) delivery
        self._abandoned: list[tuple[str, int, str]] = []  # (channel, alerts, why), logged by close
        self._warned_full: set[str] = set()
        self._inline = [c for c in self.channels if c.inline]
        self._lanes = [_Lane(c, config.queue_size, self) for c in self.channels if not c.inline]
        self._limiter = None if config.rate_limit is None else RateLimiter(config.rate_limit, clock=clock)

    @property
    def held_back(self) -> int:
        """Findings the rate limit kept from the channels (told in summary alerts instead)."""
        return 0 if self._limiter is None else self._limiter.held

    def send(self, finding: Any) -> None:
        """Alert every channel about ``finding`` unless its rule is over the rate limit; never blocks
        on a server and never raises."""
        try:
            items = [finding] if self._limiter is None else self._limiter.admit(finding)
        except Exception:  # noqa: BLE001 - a limiter that cannot read it must not lose the alert
            items = [finding]
        for item in items:
            self._send(item)

    def tick(self) -> None:
        """Send the summaries of rate-limit windows that have ended (the monitor calls it every sample)."""
        try:
            for summary in [] if self._limiter is None else self._limiter.due():
                self._send(summary)
        except Exception as exc:  # noqa: BLE001 - alerting must never break training
            log.error("tripwire: could not dispatch an alert: %s", type(exc).__name__)

    def _send(self, finding: Any) -> None:
        try:
            for channel in self._inline:
                self._finish(channel.name, finding, _attempt(channel, finding, self._abort))
            full = []
            with self._lock:
                for lane in self._lanes:
                    name = lane.channel.name
                    if self._closed or len(lane.items) >= lane.size:
                        self._dropped[name] += 1
                        if name not in self._warned_full and not self._closed:
                            self._warned_full.add(name)
                            full.append(name)
                    else:
                        lane.items.append(finding)
                        lane.ready.notify()
            for name in full:
                log.warning("tripwire: the %s alert queue is full (%d waiting): alerts for this channel are "
                            "dropped until it catches up; the count is reported at close", name,
                            self.config.queue_size)
        except Exception as exc:  # noqa: BLE001 - alerting must never break training
            log.error("tripwire: could not dispatch an alert: %s", type(exc).__name__)

    def _finish(self, name: str, finding: Any, error: str | None, lane: _Lane | None = None) -> None:
        """Count one delivery result; log the first failure of a streak, and the recovery.

        A failure while closing abandons the rest of that channel's queue (circuit breaker).
        """
        with self._lock:
            if lane is not None:
                lane.in_flight = 0
                self._progress.notify_all()
                if lane.abandoned:
                    return
            if self._final:
                return
            recovered = error is None and name in self._failing
            first = error is not None and name not in self._failing
            if error is None:
                self._delivered[name] += 1
                self._failing.pop(name, None)
            else:
                self._failed[name] += 1
                self._failing[name] = error
                if lane is not None and self._closed:
                    self._abandon(lane, "a delivery failed at close")
        if error is not None:
            rule, step = getattr(finding, "rule", "?"), getattr(finding, "step", "?")
            more = " (further failures of this channel are logged at debug level until it recovers)" if first else ""
            log.log(logging.WARNING if first else logging.DEBUG,
                    "tripwire: %s alert for %s at step %s not delivered: %s%s", name, rule, step, error, more)
        elif recovered:
            log.info("tripwire: %s alerts are delivered again", name)

    def _abandon(self, lane: _Lane, why: str) -> None:
        """Give up on a lane at close: what it still holds is counted unsent (lock held)."""
        if lane.abandoned:
            return
        lane.abandoned = True
        name = lane.channel.name
        lost = len(lane.items) + lane.in_flight
        self._unsent[name] += lost
        lane.items.clear()
        lane.ready.notify_all()
        if lost:
            last = self._failing.get(name)
            self._abandoned.append((name, lost, why + (f"; last error: {last}" if last else "")))

    def close(self, timeout_s: float = 5.0, stall_s: float = CLOSE_STALL_S) -> None:
        """Deliver what is queued where that can still succeed, then log one summary line.

        From now on each queued alert gets one attempt: retries in progress stop and none start.
        A channel is abandoned, and what it still holds counted as unsent, when its last delivery
        failed (before or during close), when a delivery has been in flight for ``stall_s``, or
        when ``timeout_s`` in all is up. Each abandoned channel is logged once, with the reason.
        Calling it again does nothing. What the rate limit held back is summarised first.
        """
        if not self._closed and self._limiter is not None:
            try:
                for summary in self._limiter.flush():
                    self._send(summary)
            except Exception as exc:  # noqa: BLE001 - alerting must never break training
                log.error("tripwire: could not dispatch an alert: %s", type(exc).__name__)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._abort.set()
            for lane in self._lanes:
                lane.closing = True
                lane.ready.notify_all()
                if lane.channel.name in self._failing:
                    self._abandon(lane, "its last delivery failed")
            self._drain(timeout_s, stall_s)
            self._final = True
            abandoned, self._abandoned = self._abandoned, []
        for name, lost, why in abandoned:
            log.warning("tripwire: %s: %d alert%s abandoned at close (%s)", name, lost, "" if lost == 1 else "s", why)
        lost = sum(self.undelivered.values())
        log.log(logging.WARNING if lost else logging.INFO, "%s", self.summary())

    def _drain(self, timeout_s: float, stall_s: float) -> None:
        """Wait (lock held) until every lane is empty or abandoned: a lane is abandoned when its
        delivery has been in flight for ``stall_s`` (but not before the abort had a moment to end
        waits between retries), and every lane still busy when ``timeout_s`` is up."""
        begun = time.monotonic()
        deadline = begun + max(0.0, timeout_s)

        def stalls(lane: _Lane) -> float:
            return max(lane.started + stall_s, begun + _CLOSE_GRACE_S)

        while True:
            now = time.monotonic()
            for lane in self._lanes:
                if lane.busy and lane.in_flight and now >= stalls(lane):
                    self._abandon(lane, f"a delivery was still in flight after {stall_s:g} s")
            waiting = [lane for lane in self._lanes if lane.busy]
            if not waiting:
                return
            if now >= deadline:
                for lane in waiting:
                    self._abandon(lane, f"the wait for queued alerts at close is limited to {timeout_s:g} s")
                return
            wake = min([deadline] + [stalls(lane) for lane in waiting if lane.in_flight])
            self._progress.wait(max(0.0, wake - now))

    def summary(self) -> str:
        """One line: per channel, how many alerts were delivered and how many were not, and why."""
        parts = []
        for name, lost in self.undelivered.items():
            part = f"{name} {self._delivered[name]} delivered, {lost} undelivered"
            if lost:
                part += (f" ({self._dropped[name]} dropped: queue full, {self._failed[name]} failed, "
                         f"{self._unsent[name]} unsent at close)")
            parts.append(part)
        held = f"; {self.held_back} held back by the rate limit (told in summaries)" if self.held_back else ""
        return "tripwire: alerts: " + ("; ".join(parts) if parts else "no channel configured") + held

    @property
    def delivered(self) -> dict[str, int]:
        """Alerts delivered, per channel."""
        with self._lock:
            return dict(self._delivered)

    @property
    def dropped(self) -> dict[str, int]:
        """Alerts dropped because the channel's queue was full (or sent after close), per channel."""
        with self._lock:
            return dict(self._dropped)

    @property
    def failed(self) -> dict[str, int]:
        """Alerts whose delivery failed (after retries), per channel."""
        with self._lock:
            return dict(self._failed)

    @property
    def unsent(self) -> dict[str, int]:
        """Alerts still queued or in flight when :meth:`close` stopped waiting, per channel."""
        with self._lock:
            return dict(self._unsent)

    @property
    def pending(self) -> dict[str, int]:
        """Alerts queued or being delivered right now, per queued channel."""
        with self._lock:
            return {lane.channel.name: len(lane.items) + lane.in_flight for lane in self._lanes}

    @property
    def undelivered(self) -> dict[str, int]:
        """Dropped + failed + unsent at close, per channel."""
        with self._lock:
            return {n: self._dropped[n] + self._failed[n] + self._unsent[n] for n in self._delivered}
