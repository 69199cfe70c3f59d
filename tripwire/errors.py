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
        more: the other problems found in the same config, each a ConfigError of its own; its
            text lists them, one line each.

    Example:
        >>> err = ConfigError("unknown key 'ratoi'", source="t.yaml", path="rules.overfit", line=4, column=3)
        >>> err.more = [ConfigError("must be > 0 (got -1)", source="t.yaml", path="interval", line=1, column=11)]
        >>> print(err)
        t.yaml:4:3 at 'rules.overfit': unknown key 'ratoi'
        t.yaml:1:11 at 'interval': must be > 0 (got -1)
        >>> [e.path for e in err.errors]
        ['rules.overfit', 'interval']
    """

    def __init__(self, problem: str, *, source: str = "<dict>", path: str = "",
                 line: int | None = None, column: int | None = None) -> None:
        self.source, self.path, self.line, self.column, self.problem = source, path, line, column, problem
        where = source
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        at = f" at '{path}'" if path else ""
        super().__init__(f"{where}{at}: {problem}")
        self.more: list[ConfigError] = []

    @property
    def errors(self) -> list[ConfigError]:
        """Every problem found: this one, then :attr:`more`."""
        return [self, *self.more]

    def __str__(self) -> str:
        return "\n".join(str(e.args[0]) for e in self.errors)


class RuleTriggered(TripwireError):
    """Raised into the training loop by the ``raise`` action; carries the finding."""

    def __init__(self, finding) -> None:  # noqa: ANN001 - Finding, imported lazily to avoid a cycle
        self.finding = finding
        super().__init__(f"[{finding.rule}] {finding.message}")

    def __reduce__(self):  # noqa: ANN204 - pickles with its finding (raised on dask/spark workers)
        return type(self), (self.finding,)


class RuleError(TripwireError):
    """A rule failed internally while ``strict=True``; wraps the original exception."""
