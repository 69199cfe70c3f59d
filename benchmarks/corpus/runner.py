"""Run one corpus entry with tripwire's default rules and say what they made of it.

A healthy entry runs with ``{"shadow": True}``: the default rules behave as with
``config=None`` (their findings are what a user would get), and every other built-in rule
runs log-only beside them, so the run record holds every statistic the rules read.
``tripwire calibrate`` then replays each default rule over that record and gives its margin:
how far the default threshold sat from the strictest value that would have stayed silent.
A twin runs with ``config=None`` exactly, so its findings (and a ``nonfinite`` stop) are the
defaults' own.

Example:
    >>> from corpus.registry import Entry
    >>> def tiny(make_callback):  # a few rounds of XGBoost on a sum of 12 features
    ...     import numpy as np, xgboost as xgb
    ...     X = np.random.default_rng(0).normal(size=(500, 12))
    ...     cb = make_callback()
    ...     xgb.train({"max_depth": 3}, xgb.DMatrix(X, X.sum(axis=1)), 20, callbacks=[cb])
    ...     return cb
    >>> import tempfile
    >>> out = run_entry(Entry("demo/tiny", "xgboost", "a sum", tiny), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    tripwire: no findings in 2 sampled steps ...
    >>> out.error, out.findings, {m["rule"] for m in out.margins} >= {"tree_depth"}
    ('', [], True)
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corpus.registry import Entry

_CALLBACKS = {"lightning": "LightningTripwire", "keras": "KerasTripwire", "xgboost": "XGBoostTripwire"}


def default_kinds() -> set[str]:
    """Rule types the default config (``config=None``) enables."""
    from tripwire.registry import builtin_rules

    return {kind for kind, cls in builtin_rules().items() if cls.in_default_set}


@dataclass
class Outcome:
    """What one run of an entry showed (plain data: it travels as JSON between processes)."""

    name: str
    framework: str
    healthy: str | None
    fault: str
    expect: list[str]
    blocked: str
    seconds: float = 0.0
    #: findings of the default rules: rule, step, subject, value, threshold, message
    findings: list[dict[str, Any]] = field(default_factory=list)
    #: findings of the rules outside the default set (healthy runs record them log-only)
    shadow_findings: list[dict[str, Any]] = field(default_factory=list)
    #: per default rule threshold: rule, limit, scale, current, boundary, margin, fired, note
    margins: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None
    #: instrumentation the fail-open guard switched off: ``{part: error}``
    switched_off: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def is_twin(self) -> bool:
        return self.healthy is not None

    def first_steps(self) -> dict[str, int]:
        """Each default rule that fired, with the step it first fired at."""
        out: dict[str, int] = {}
        for f in self.findings:
            out.setdefault(f["rule"], f["step"])
        return out

    @property
    def caught(self) -> bool:
        """For a twin: one of the expected rules fired."""
        return any(rule in self.first_steps() for rule in self.expect)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


def run_entry(entry: Entry, log_dir: str | Path) -> Outcome:
    """Train ``entry`` with the default rules, its record under ``log_dir``; never raises (a
    crash is the outcome's ``error``)."""
    import tripwire

    out = Outcome(entry.name, entry.framework, entry.healthy, entry.fault, list(entry.expect), entry.blocked)
    run_name = entry.name.replace("/", "-")
    config = None if entry.is_twin else {"shadow": True}
    callback_class = getattr(tripwire, _CALLBACKS[entry.framework])

    def make_callback(**extra: Any) -> Any:
        return callback_class(config, log_dir=str(log_dir), run_name=run_name, **extra)

    start = time.perf_counter()
    try:
        callback = entry.train(make_callback)
    except Exception as exc:  # noqa: BLE001 - a crashing entry is a result of the corpus, not its end
        out.seconds = time.perf_counter() - start
        out.error = f"{type(exc).__name__}: {exc}"
        out.error += "\n" + "".join(traceback.format_exception(exc)[-3:])
        return out
    out.seconds = time.perf_counter() - start
    kinds = default_kinds()
    for finding in callback.findings:
        (out.findings if finding.kind in kinds else out.shadow_findings).append(_finding(finding))
    stopped = callback.stopped_by
    out.stopped_by = None if stopped is None else stopped.rule
    guard = getattr(getattr(callback, "monitor", None), "guard", None)  # Lightning, Keras
    out.switched_off = dict(guard.disabled) if guard is not None else dict(getattr(callback, "switched_off", {}))
    record = Path(log_dir) / run_name
    if not entry.is_twin and record.exists():
        out.margins = margins(record, kinds)
    return out


def margins(record: Path, kinds: set[str]) -> list[dict[str, Any]]:
    """Each default rule threshold's calibration on one run record."""
    from tripwire.calibrate import calibrate

    with contextlib.redirect_stdout(io.StringIO()):
        rows = calibrate([record])
    return [{"rule": r.rule, "limit": r.limit, "side": r.side, "scale": r.scale, "current": _num(r.current),
             "boundary": _num(r.boundary), "margin": _num(r.margin), "fired": min(r.fired.values(), default=None),
             "note": r.note} for r in rows if r.kind in kinds]


def _finding(f: Any) -> dict[str, Any]:
    return {"rule": f.rule, "step": f.step, "subject": f.subject, "value": _num(f.value),
            "threshold": _num(f.threshold), "message": f.message}


def _num(value: Any) -> Any:
    """A JSON-safe float (inf and nan as strings), or the value unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
