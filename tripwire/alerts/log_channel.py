"""`LogChannel`: a finding as one Python ``logging`` record, level by severity.

With the console channel on as well, a record that could only reach standard error (no handler
on the logger's chain, so Python's last-resort handler would print it, or only handlers that
write to stderr/stdout) is not emitted: the console already printed that line. A finding is
printed once; a log file or a log collector still gets its record.

Example:
    >>> from tripwire.config import LogConfig
    >>> ch = LogChannel(LogConfig(logger="my.run"))
    >>> ch.logger.name, ch.inline
    ('my.run', True)
"""

from __future__ import annotations

import logging
import sys
import threading

from tripwire.alerts.channel import summary_line
from tripwire.config import LogConfig
from tripwire.finding import Finding

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogChannel:
    """Log each finding on the configured logger; the record carries it as ``tripwire_finding``."""

    name = "log"
    inline = True

    def __init__(self, config: LogConfig, *, console: bool = False, step_word: str = "step") -> None:
        self.step_word = step_word
        self.logger = logging.getLogger(config.logger)
        self.console = console  # the console channel prints every finding to stderr too

    def deliver(self, finding: Finding, abort: threading.Event | None = None) -> None:
        level = LEVELS.get(finding.severity, logging.WARNING)
        if self.console and not _reaches_beyond_the_terminal(self.logger, level):
            return
        self.logger.log(level, "%s", summary_line(finding, self.step_word), extra={"tripwire_finding": finding})


def _reaches_beyond_the_terminal(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` reaches a handler that does not just print to stderr/stdout."""
    if not logger.isEnabledFor(level):
        return False
    node: logging.Logger | None = logger
    while node is not None:
        for handler in node.handlers:
            stream = getattr(handler, "stream", None)
            if level >= handler.level and not (type(handler) is logging.StreamHandler
                                               and stream in (sys.stderr, sys.stdout)):
                return True
        node = node.parent if node.propagate else None
    return False
