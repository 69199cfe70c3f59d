"""`LogChannel`: a finding as one Python ``logging`` record, level by severity.

Example:
    >>> from tripwire.config import LogConfig
    >>> ch = LogChannel(LogConfig(logger="my.run"))
    >>> ch.logger.name, ch.inline
    ('my.run', True)
"""

from __future__ import annotations

import logging
import threading

from tripwire.alerts.channel import summary_line
from tripwire.config import LogConfig
from tripwire.finding import Finding

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogChannel:
    """Log each finding on the configured logger; the record carries it as ``tripwire_finding``."""

    name = "log"
    inline = True

    def __init__(self, config: LogConfig) -> None:
        self.logger = logging.getLogger(config.logger)

    def deliver(self, finding: Finding, abort: threading.Event | None = None) -> None:
        level = LEVELS.get(finding.severity, logging.WARNING)
        self.logger.log(level, "%s", summary_line(finding), extra={"tripwire_finding": finding})
