"""Alert delivery for the ``alert`` action: log, console, webhook and e-mail channels.

Example:
    >>> from tripwire.alerts import AlertDispatcher
    >>> d = AlertDispatcher({"log": None, "console": {}})
    >>> [c.name for c in d.channels]
    ['console']
    >>> d.close(timeout_s=0.1)
"""

from __future__ import annotations

from tripwire.alerts.channel import Channel, DeliveryError, summary_line
from tripwire.alerts.dispatcher import AlertDispatcher

__all__ = ["AlertDispatcher", "Channel", "DeliveryError", "summary_line"]
