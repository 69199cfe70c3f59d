"""Findings where Lightning users already look: the Trainer's loggers.

Every logger gets ``tripwire/findings``, the number of findings so far, as a metric at each
sample (a CSV column, a TensorBoard scalar, a W&B or MLflow metric): a step up marks when
something was found. Where a logger holds text, each finding also goes in as its alert line
(:func:`~tripwire.alerts.channel.summary_line`), at the finding's step:

- TensorBoard (``TensorBoardLogger``): ``add_text`` under ``tripwire/<rule>``;
- Weights & Biases (``WandbLogger``): a table ``tripwire/finding_table`` through ``log_text``, one row
  per finding (step, rule, severity, subject, message, suggestion);
- MLflow (``MLFlowLogger``): a run tag ``tripwire.<rule>`` holding the latest finding of that rule.

The logger classes are looked up in the Lightning packages already imported (a Trainer's loggers
come from one), so nothing is imported here and W&B or MLflow need not be installed for the
check; other loggers (CSV, your own) get the metric only.

Example:
    >>> f = Finding(rule="dead_relu", kind="dead_relu", step=120, epoch=1, severity="warning",
    ...             subject="fc1", value=0.8, threshold=0.5, message="80% of fc1 is dead", suggestion="lower the LR")
    >>> finding_rows([f])
    [['120', 'dead_relu', 'warning', 'fc1', '80% of fc1 is dead', 'lower the LR']]
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from tripwire.alerts.channel import summary_line
from tripwire.finding import Finding

log = logging.getLogger("tripwire")

#: the metric every logger gets: the number of findings so far
COUNT = "tripwire/findings"
#: the W&B table of the findings
TABLE = "tripwire/finding_table"
_PACKAGES = ("lightning.pytorch", "pytorch_lightning")
_COLUMNS = ["step", "rule", "severity", "subject", "message", "suggestion"]
_TAG_LIMIT = 5000  # MLflow's longest tag value


def _classes(name: str) -> tuple[type, ...]:
    """Logger class ``name`` of each Lightning package imported so far."""
    found = []
    for package in _PACKAGES:
        module = sys.modules.get(f"{package}.loggers")
        cls = getattr(module, name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def finding_rows(findings: Iterable[Finding]) -> list[list[str]]:
    """One table row per finding, in the order of ``_COLUMNS``."""
    return [[str(f.step), f.rule, f.severity, f.subject or "", f.message, f.suggestion] for f in findings]


def log_findings(loggers: Iterable[Any], findings: list[Finding], total: int, step: int,
                 step_word: str = "step") -> None:
    """Log ``total`` (findings so far) to every logger, and the new ``findings`` as text where a
    logger holds text. A logger that fails is named in one warning; training goes on."""
    for logger in loggers:
        try:
            logger.log_metrics({COUNT: float(total)}, step=step)
            if findings:
                _log_text(logger, findings, step, step_word)
        except Exception as exc:  # noqa: BLE001 - a logger failure must not stop training
            log.warning("tripwire: could not log findings to %s: %s", type(logger).__name__, exc)


def _log_text(logger: Any, findings: list[Finding], step: int, step_word: str) -> None:
    if isinstance(logger, _classes("TensorBoardLogger")):
        for f in findings:
            logger.experiment.add_text(f"tripwire/{f.rule}", summary_line(f, step_word), global_step=f.step)
    elif isinstance(logger, _classes("WandbLogger")):
        logger.log_text(key=TABLE, columns=_COLUMNS, data=finding_rows(findings), step=step)
    elif isinstance(logger, _classes("MLFlowLogger")):
        for f in findings:
            logger.experiment.set_tag(logger.run_id, f"tripwire.{f.rule}", summary_line(f, step_word)[:_TAG_LIMIT])
