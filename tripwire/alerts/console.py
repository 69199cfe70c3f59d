"""`ConsoleChannel`: one readable line per finding on standard error.

Example:
    >>> from tripwire.config import ConsoleConfig
    >>> ConsoleChannel(ConsoleConfig()).inline
    True
"""

from __future__ import annotations

import sys
import threading

from tripwire.alerts.channel import summary_line
from tripwire.config import ConsoleConfig
from tripwire.finding import Finding


class ConsoleChannel:
    """Print :func:`~tripwire.alerts.channel.summary_line` to ``sys.stderr`` (looked up at each call)."""

    name = "console"
    inline = True

    def __init__(self, config: ConsoleConfig, *, step_word: str = "step") -> None:
        self.config = config
        self.step_word = step_word

    def deliver(self, finding: Finding, abort: threading.Event | None = None) -> None:
        stream = sys.stderr
        if stream is None:  # pythonw and some daemons run without one
            raise OSError("no stderr stream")
        stream.write(summary_line(finding, self.step_word) + "\n")
        stream.flush()
