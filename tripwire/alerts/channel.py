"""What every alert channel shares: the `Channel` protocol, `DeliveryError` and the one-line summary.

Example:
    >>> from tripwire.finding import Finding
    >>> f = Finding(rule="dead_relu", kind="dead_relu", step=120, epoch=1, severity="warning",
    ...             subject="encoder.act1", value=0.8, threshold=0.5,
    ...             message="80% of the units are dead", suggestion="lower the LR")
    >>> summary_line(f)
    'tripwire warning: dead_relu at step 120 on encoder.act1: 80% of the units are dead | try: lower the LR'
"""

from __future__ import annotations

import threading
from typing import Protocol

from tripwire.finding import Finding


class DeliveryError(Exception):
    """A channel could not deliver an alert; the message is safe to log (no secrets)."""


class Channel(Protocol):
    """One way of telling a person about a finding.

    ``inline`` channels (log, console) are cheap and run on the caller's thread; the others run on
    a worker thread of their own. ``deliver`` raises :class:`DeliveryError` (or any exception) on
    failure; ``abort`` is set when the dispatcher starts closing: a delivery waiting to retry gives
    up at once and none retries any more (at close each queued alert gets one attempt).
    """

    name: str
    inline: bool

    def deliver(self, finding: Finding, abort: threading.Event) -> None: ...


def summary_line(finding: Finding, step_word: str = "step") -> str:
    """One readable line: severity, rule, step (``step_word``: ``round`` for XGBoost, see
    :mod:`tripwire.wording`), subject, message and suggestion."""
    where = f" on {finding.subject}" if finding.subject else ""
    text = (f"tripwire {finding.severity}: {finding.rule} at {step_word} {finding.step}{where}: {finding.message}"
            f" | try: {finding.suggestion}")
    return " ".join(text.split())  # a message with newlines must not break the one-line promise
