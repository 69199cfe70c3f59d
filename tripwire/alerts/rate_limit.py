"""`RateLimiter`: at most ``alerts`` alerts per rule in each window; the rest told in one summary.

A rule's window opens with its first alert. Within it the first ``alerts`` findings go out; the
others are counted, and when the window ends (seen at the next alert or sample, or at close) one
summary alert says how many there were, on how many subjects, since when. Nothing is lost: the
run record holds every finding; the limiter only decides what is shouted.

Example:
    >>> from tripwire.config import RateLimitConfig
    >>> from tripwire.finding import Finding
    >>> now = [0.0]
    >>> limiter = RateLimiter(RateLimitConfig(alerts=2, window_s=3600), clock=lambda: now[0])
    >>> def fired(step, subject):
    ...     return Finding(rule="exploding_gradient", kind="exploding_gradient", step=step, epoch=0,
    ...                    severity="warning", subject=subject, value=30.0, threshold=10.0,
    ...                    message="gradient norm 30x its median", suggestion="clip gradients")
    >>> [len(limiter.admit(fired(s, f"fc{s % 3}"))) for s in range(5)]
    [1, 1, 0, 0, 0]
    >>> now[0] = 3600.0
    >>> [summary] = limiter.due()
    >>> summary.message.split(" since ")[0], summary.evidence["subjects"]
    ('exploding_gradient fired 3 more times on 3 subjects', ['fc0', 'fc1', 'fc2'])
    >>> summary.message.endswith("(alerts are limited to 2 per rule per hour)"), limiter.due()
    (True, [])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tripwire.config import RateLimitConfig
from tripwire.finding import SEVERITIES, Finding

_NAMED = 10  # subjects listed in a summary's evidence


@dataclass
class _Window:
    """One rule's current window: when it opened, alerts let through, and what was held back."""

    opened: float
    sent: int = 0
    held: int = 0
    since: float = 0.0  # when the first alert was held back
    subjects: set[str] = field(default_factory=set)
    run_wide: bool = False
    last: Finding | None = None
    severity: str = "info"


class RateLimiter:
    """Decides which alerts go out; one per dispatcher, so every channel gets the same ones.

    Args:
        config: how many alerts per rule per window.
        clock: seconds, wall-clock (the summary names the time the first held-back alert fired).

    Attributes:
        held: alerts held back so far (each one is counted in a summary).
    """

    def __init__(self, config: RateLimitConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.held = 0
        self._windows: dict[str, _Window] = {}

    def admit(self, finding: Finding) -> list[Finding]:
        """What to send now for ``finding``: itself, or nothing when its rule is over the limit;
        preceded by the summary of the rule's previous window when that window has ended."""
        now = self.clock()
        out = self._ended(now, {finding.rule})
        window = self._windows.setdefault(finding.rule, _Window(opened=now))
        if window.sent < self.config.alerts:
            window.sent += 1
            return [*out, finding]
        if not window.held:
            window.since = now
        window.held += 1
        self.held += 1
        named = finding.evidence.get("subjects") if isinstance(finding.evidence, dict) else None
        if isinstance(named, dict) and named:
            window.subjects.update(map(str, named))
        elif finding.subject is None:
            window.run_wide = True
        else:
            window.subjects.add(finding.subject)
        window.last = finding
        window.severity = max(window.severity, finding.severity, key=SEVERITIES.index)
        return out

    def due(self) -> list[Finding]:
        """Summaries of the windows that have ended (called with every sample: cheap when none has)."""
        return self._ended(self.clock(), set(self._windows)) if self._windows else []

    def flush(self) -> list[Finding]:
        """Summaries of every window that held something back (at the end of the run)."""
        out = [self._summary(w) for w in self._windows.values() if w.held]
        self._windows.clear()
        return out

    def _ended(self, now: float, rules: set[str]) -> list[Finding]:
        out = []
        for rule in [r for r in rules if r in self._windows]:
            window = self._windows[rule]
            if now >= window.opened + self.config.window_s:
                del self._windows[rule]
                if window.held:
                    out.append(self._summary(window))
        return out

    def _summary(self, window: _Window) -> Finding:
        last = window.last or Finding(rule="?", kind="?", step=0, epoch=None, severity="info", subject=None,
                                      value=None, threshold=None, message="", suggestion="")
        n, k = window.held, len(window.subjects)
        on = f" on {k} subject{'' if k == 1 else 's'}" if k else ""
        since = time.strftime("%H:%M", time.localtime(window.since))
        message = (f"{last.rule} fired {n} more time{'' if n == 1 else 's'}{on} since {since} "
                   f"(alerts are limited to {self.config.alerts} per rule {_per(self.config.window_s)})")
        return Finding(rule=last.rule, kind=last.kind, step=last.step, epoch=last.epoch, severity=window.severity,
                       subject=None, value=None, threshold=None, message=message,
                       suggestion="every occurrence is in the run record; `tripwire report` plots them",
                       evidence={"held_back": n, "subjects": sorted(window.subjects)[:_NAMED],
                                 "run_wide": window.run_wide, "since": since, "last_step": last.step})


def _per(window_s: float) -> str:
    """``per hour``, ``per minute`` or ``every 90 s``."""
    named = {3600.0: "per hour", 60.0: "per minute", 86400.0: "per day"}
    return named.get(float(window_s), f"every {window_s:g} s")
