"""Exceptions raised by tripwire.

Example:
    >>> from tripwire.errors import ConfigError
    >>> issubclass(ConfigError, ValueError)
    True
"""

from __future__ import annotations


class TripwireError(Exception):
    """Root of every exception tripwire raises on purpose."""


class ConfigError(TripwireError, ValueError):
    """A configuration that cannot be used, located as precisely as the input allows.

    Attributes:
        source: file name, or ``"<dict>"`` for an in-memory config.
        line: 1-based line in ``source``, or None when unknown.
        column: 1-based column, or None.
        path: key path such as ``rules.dead_relu.threshold_layer``.
        problem: what is wrong, with the value received and the valid choices.
    """

    def __init__(self, problem: str, *, source: str = "<dict>", path: str = "",
                 line: int | None = None, column: int | None = None) -> None:
        self.source, self.path, self.line, self.column, self.problem = source, path, line, column, problem
        where = source
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        at = f" at '{path}'" if path else ""
        super().__init__(f"{where}{at}: {problem}")


class RuleTriggered(TripwireError):
    """Raised into the training loop by the ``raise`` action; carries the finding."""

    def __init__(self, finding) -> None:  # noqa: ANN001 - Finding, imported lazily to avoid a cycle
        self.finding = finding
        super().__init__(f"[{finding.rule}] {finding.message}")

    def __reduce__(self):  # noqa: ANN204 - pickles with its finding (raised on dask/spark workers)
        return type(self), (self.finding,)


class RuleError(TripwireError):
    """A rule failed internally while ``strict=True``; wraps the original exception."""
