"""How a run ended: finished, stopped by a rule, crashed, or the process exited with tripwire open.

:class:`~tripwire.monitor.Monitor` decides it once, when it closes, and the run record keeps it
in its ``end`` meta entry; a reader also sees a run that is still being written (``in_progress``:
``end`` is null) and a record from a tripwire that kept no end (``unknown``: no ``end`` entry).

Example:
    >>> RunEnd("stopped", step=120, rule="overfit").describe()
    'stopped by rule overfit at step 120'
    >>> RunEnd("crashed", step=40, error="ValueError").describe()
    'crashed: ValueError left training; last sample at step 40'
    >>> end = RunEnd.from_meta({"state": "finished", "step": 990, "at": "2024-05-01T14:22:33+0000"})
    >>> end.describe(), end.at
    ('finished; last sample at step 990', '2024-05-01T14:22:33+0000')
    >>> RunEnd.from_meta(None, last_step=70).describe()
    'in progress, last sample at step 70'
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

#: what a monitor records when it closes
CLOSED_STATES = ("finished", "stopped", "crashed", "exited")
#: what a reader may also find: a run still writing, or a record that kept no end
STATES = (*CLOSED_STATES, "in_progress", "unknown")

_MISSING = object()


@dataclass(frozen=True)
class RunEnd:
    """The end of a run.

    Attributes:
        state: ``finished`` (training ended normally), ``stopped`` (a rule's ``stop`` or ``raise``
            action ended it), ``crashed`` (an exception left training), ``exited`` (the process
            exited while tripwire was still open and no exception was seen: ``sys.exit`` inside
            the loop, or a loop that never called ``close``), ``in_progress`` (nothing recorded
            yet: still training, or killed without a chance to record), ``unknown`` (a record
            from a tripwire that did not keep the end).
        step: ``stopped``: the step of the finding that stopped it; otherwise the last sampled step.
        rule: ``stopped``: the rule.
        error: ``crashed``: the exception's type; ``stopped`` by a ``raise`` action: ``RuleTriggered``.
        at: when it ended (local time, ISO 8601).
    """

    state: str
    step: int | None = None
    rule: str | None = None
    error: str | None = None
    at: str | None = None

    @classmethod
    def closing(cls, *, stopped_by: Any = None, error: BaseException | None = None, exited: bool = False,
                last_step: int | None = None) -> RunEnd:
        """The end a monitor records: ``stopped_by`` is the finding that stopped training, ``error``
        the exception that left it, ``exited`` whether the process is exiting with tripwire open.

        Example:
            >>> from tripwire.errors import RuleTriggered
            >>> from tripwire.finding import Finding
            >>> f = Finding("nonfinite", "nonfinite", 4, 0, "error", None, 1.0, None, "NaN loss", "lower the LR")
            >>> e = RunEnd.closing(error=RuleTriggered(f), last_step=4)
            >>> e.state, e.rule, e.step, e.error
            ('stopped', 'nonfinite', 4, 'RuleTriggered')
            >>> RunEnd.closing(error=KeyboardInterrupt(), last_step=30).describe()
            'crashed: KeyboardInterrupt left training; last sample at step 30'
        """
        from tripwire.errors import RuleTriggered

        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if isinstance(error, RuleTriggered) and stopped_by is None:
            stopped_by = error.finding
        if stopped_by is not None:
            return cls("stopped", step=stopped_by.step, rule=stopped_by.rule,
                       error=None if error is None else type(error).__name__, at=now)
        if error is not None:
            return cls("crashed", step=last_step, error=type(error).__name__, at=now)
        return cls("exited" if exited else "finished", step=last_step, at=now)

    @classmethod
    def from_meta(cls, value: Any = _MISSING, last_step: int | None = None) -> RunEnd:
        """The end as a record keeps it: ``value`` is the ``end`` meta entry (null while the run
        writes; absent in a record that kept none); ``last_step`` the record's last sampled step."""
        if value is _MISSING:
            return cls("unknown", step=last_step)
        if not isinstance(value, dict) or value.get("state") not in CLOSED_STATES:
            return cls("in_progress", step=last_step)
        fields = {k: value.get(k) for k in ("step", "rule", "error", "at")}
        return cls(value["state"], **fields)

    def to_meta(self) -> dict[str, Any]:
        """The ``end`` meta entry (JSON-safe)."""
        return asdict(self)

    def headline(self, step_word: str = "step") -> str:
        """:meth:`describe` as a sentence about the run, with the time it ended when known.

        Example:
            >>> RunEnd("finished", step=90, at="2024-05-01T14:22:33+0000").headline()
            'Run finished; last sample at step 90 (ended 2024-05-01T14:22:33+0000).'
        """
        return f"Run {self.describe(step_word)}" + (f" (ended {self.at})." if self.at else ".")

    def describe(self, step_word: str = "step") -> str:
        """One line a person reads: how the run ended and at which step (``step_word``: ``round`` for
        XGBoost, see :mod:`tripwire.wording`)."""
        last = "" if self.step is None else f"; last sample at {step_word} {self.step}"
        if self.state == "stopped":
            how = f" (it raised {self.error})" if self.error == "RuleTriggered" else (
                f" (then {self.error} left training)" if self.error else "")
            return f"stopped by rule {self.rule} at {step_word} {self.step}{how}"
        if self.state == "crashed":
            return f"crashed: {self.error} left training{last}"
        if self.state == "exited":
            return f"the process exited with tripwire still open (no exception seen){last}"
        if self.state == "in_progress":
            return "in progress" + ("" if self.step is None else f", last sample at {step_word} {self.step}")
        if self.state == "unknown":
            return f"end state unknown (this record was written by a tripwire that did not keep it){last}"
        return f"finished{last}"
