"""`AlertDispatcher`: sends findings to the configured channels without ever holding up training.

Inline channels (log, console) run on the caller's thread: they are as cheap as any log line.
Every other channel (webhook, e-mail) gets a bounded queue and a daemon thread of its own, so a
slow or dead server delays only its own alerts. :meth:`AlertDispatcher.send` only appends to
those queues; when one is full the alert is dropped for that channel and counted.

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
from typing import Any

from tripwire.actions.channel import Channel, DeliveryError
from tripwire.actions.console import ConsoleChannel
from tripwire.actions.email_channel import EmailChannel
from tripwire.actions.log_channel import LogChannel
from tripwire.actions.webhook import WebhookChannel
from tripwire.config import ChannelsConfig

log = logging.getLogger("tripwire.actions")


def build_channels(config: ChannelsConfig) -> list[Channel]:
    """The channels ``config`` enables, inline ones first."""
    built: list[Channel] = []
    if config.log is not None:
        built.append(LogChannel(config.log))
    if config.console is not None:
        built.append(ConsoleChannel(config.console))
    if config.webhook is not None:
        built.append(WebhookChannel(config.webhook))
    if config.email is not None:
        built.append(EmailChannel(config.email))
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
    """One queued channel: a bounded deque and the daemon thread that drains it."""

    def __init__(self, channel: Channel, size: int, dispatcher: AlertDispatcher) -> None:
        self.channel, self.size, self.dispatcher = channel, size, dispatcher
        self.items: deque = deque()
        self.in_flight = 0
        self.closing = False
        self.ready = threading.Condition(dispatcher._lock)  # one lock guards queues and counters
        self.thread = threading.Thread(target=self._run, name=f"tripwire-alerts-{channel.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        abort = self.dispatcher._abort
        while True:
            with self.ready:
                while not self.items and not self.closing:
                    self.ready.wait()
                if not self.items or abort.is_set():
                    return
                finding = self.items.popleft()
                self.in_flight = 1
            self.dispatcher._finish(self.channel.name, finding, _attempt(self.channel, finding, abort), self)


class AlertDispatcher:
    """Delivers findings to the log, console, webhook and e-mail channels of a ``ChannelsConfig``.

    Args:
        config: the ``actions`` section of the configuration (a ``ChannelsConfig``, a dict or None
            for the default: the ``tripwire`` logger only).

    Counters (dicts keyed by channel name): :attr:`delivered`, :attr:`dropped` (queue full),
    :attr:`failed` (delivery failed, after retries), :attr:`unsent` (still queued or in flight
    when :meth:`close` gave up) and :attr:`undelivered`, the sum of the last three.
    """

    def __init__(self, config: ChannelsConfig | dict | None = None) -> None:
        if not isinstance(config, ChannelsConfig):
            config = ChannelsConfig.model_validate(config or {})
        self.config = config
        self.channels = build_channels(config)
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._closed = False  # no more alerts accepted
        self._final = False  # counters frozen: late results of abandoned deliveries are ignored
        names = [c.name for c in self.channels]
        self._delivered, self._failed, self._dropped, self._unsent = ({n: 0 for n in names} for _ in range(4))
        self._failing: set[str] = set()
        self._warned_full: set[str] = set()
        self._inline = [c for c in self.channels if c.inline]
        self._lanes = [_Lane(c, config.queue_size, self) for c in self.channels if not c.inline]

    def send(self, finding: Any) -> None:
        """Alert every channel about ``finding``; never blocks on a server and never raises."""
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
        """Count one delivery result; log the first failure of a streak, and the recovery."""
        with self._lock:
            if lane is not None:
                lane.in_flight = 0
            if self._final:
                return
            recovered = error is None and name in self._failing
            first = error is not None and name not in self._failing
            if error is None:
                self._delivered[name] += 1
                self._failing.discard(name)
            else:
                self._failed[name] += 1
                self._failing.add(name)
        if error is not None:
            rule, step = getattr(finding, "rule", "?"), getattr(finding, "step", "?")
            more = " (further failures of this channel are logged at debug level until it recovers)" if first else ""
            log.log(logging.WARNING if first else logging.DEBUG,
                    "tripwire: %s alert for %s at step %s not delivered: %s%s", name, rule, step, error, more)
        elif recovered:
            log.info("tripwire: %s alerts are delivered again", name)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued, waiting at most ``timeout_s`` in all, then log one summary line.

        Alerts still queued or in flight when the time is up are abandoned and counted as unsent;
        retries in progress stop. Calling it again does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for lane in self._lanes:
                lane.closing = True
                lane.ready.notify_all()
        deadline = time.monotonic() + max(0.0, timeout_s)
        for lane in self._lanes:  # all lanes drain in parallel; each join gets what time is left
            lane.thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()
        with self._lock:
            for lane in self._lanes:
                self._unsent[lane.channel.name] = len(lane.items) + lane.in_flight
                lane.items.clear()
            self._final = True
        lost = sum(self.undelivered.values())
        log.log(logging.WARNING if lost else logging.INFO, "%s", self.summary())

    def summary(self) -> str:
        """One line: per channel, how many alerts were delivered and how many were not, and why."""
        parts = []
        for name, lost in self.undelivered.items():
            part = f"{name} {self._delivered[name]} delivered, {lost} undelivered"
            if lost:
                part += (f" ({self._dropped[name]} dropped: queue full, {self._failed[name]} failed, "
                         f"{self._unsent[name]} unsent at close)")
            parts.append(part)
        return "tripwire: alerts: " + ("; ".join(parts) if parts else "no channel configured")

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
