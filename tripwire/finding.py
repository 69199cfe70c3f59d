"""`Finding`: what a rule reports, in a shape a person and a program can both read.

Example:
    >>> f = Finding(rule="dead_relu", kind="dead_relu", step=120, epoch=1, severity="warning",
    ...             subject="encoder.act1", value=0.8, threshold=0.5,
    ...             message="80% of the units of encoder.act1 are dead", suggestion="lower the LR")
    >>> Finding.from_dict(f.to_dict()) == f
    True
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")


def _plain(value: Any) -> Any:
    """Turn numpy scalars, tuples and non-finite floats into JSON-safe plain values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": JSON has no literal for them
    return value


@dataclass(frozen=True)
class Finding:
    """One problem a rule detected, at one step, for one subject.

    Attributes:
        rule: the configured rule name (``tiny_weights``); equals ``kind`` unless renamed.
        kind: the rule type (``low_variance``).
        step: global optimizer step (XGBoost: boosting round) where it was detected.
        epoch: epoch at detection, or None where the framework has none.
        severity: ``info``, ``warning`` or ``error``.
        subject: layer, parameter or feature names it concerns, or None for the whole run.
        value: the measured value that crossed the threshold.
        threshold: the threshold it crossed.
        message: one line saying what is wrong.
        suggestion: what to try.
        evidence: the numbers behind it.
    """

    rule: str
    kind: str
    step: int
    epoch: int | None
    severity: Severity
    subject: str | None
    value: float | None
    threshold: float | None
    message: str
    suggestion: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serializable dict."""
        return _plain(asdict(self))

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (non-finite numbers come back as floats)."""
        data = dict(data)
        for key in ("value", "threshold"):
            if isinstance(data.get(key), str):
                data[key] = float(data[key])
        return cls(**data)

    def __str__(self) -> str:
        where = f" [{self.subject}]" if self.subject else ""
        return f"step {self.step}{where} {self.rule}: {self.message} -> {self.suggestion}"
