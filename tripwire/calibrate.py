"""`tripwire calibrate`: how close each rule came to firing on healthy runs, and what to set.

A run record holds every statistic the rules read, so a rule can be replayed over it with any
threshold. For each threshold a rule declares (:class:`~tripwire.rule.Limit`), calibration
replays the rule over the recorded samples (its other thresholds switched off) and searches
the **boundary**: the strictest value at which the rule still stays silent on that run. Over
several healthy runs the most lenient boundary wins; the proposal adds a safety margin to it.

- upper limit (the rule fires when its statistic goes above it): silent for values >= the
  boundary; margin = current / boundary (log scale) or current - boundary (linear, int);
- lower limit (fires below it): silent for values <= the boundary; margin = boundary / current
  or boundary - current.

A margin above 1 (log) or above 0 (linear) means the run stayed silent with room to spare;
below it, the current value fired on the run. Rules whose statistics a record lacks are
listed as "no data" (a rule of another framework, a model without such layers, or a run
recorded without ``shadow: true``, which records every rule's statistics); a rule silent at
every value tried as "never close".

Example:
    >>> import tempfile
    >>> from tripwire.record import RunRecord
    >>> from tripwire.stats import Sample
    >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="healthy")
    >>> for step, norm in enumerate([1.0, 1.2, 0.9, 1.1, 1.0, 1.0, 3.1, 1.1]):
    ...     rec.add_sample(Sample(step=10 * step, epoch=0, stats={"grad_global_norm": {None: norm},
    ...                                                           "loss": {None: 1.0}}))
    >>> rec.close()
    >>> rows = calibrate([rec.path], kinds=["exploding_gradient"])
    >>> [(r.limit, r.current, round(r.boundary, 2)) for r in rows]
    [('max_norm', 10000.0, 3.1), ('factor', 10.0, 3.1)]
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tripwire.config import Config, RuleSpec
from tripwire.registry import builtin_rules, rule_class
from tripwire.rule import Limit, Rule
from tripwire.stats import Sample

#: log-scale search range (values are clipped into it)
_LOG_RANGE = (1e-30, 1e30)
_BISECTIONS = 24


@dataclass
class Calibration:
    """One threshold of one rule, over the runs given."""

    rule: str
    kind: str
    limit: str
    side: str
    scale: str
    current: float | None
    #: the strictest value silent on every run (None: the rule never came close, or no data)
    boundary: float | None = None
    #: runs where the current value fires, with the first step
    fired: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    note: str = ""

    @property
    def margin(self) -> float | None:
        """How far the current value is from the boundary, on the lenient side when positive
        (linear, int) or above 1 (log)."""
        if self.boundary is None or self.current is None:
            return None
        if self.scale == "log":
            if self.boundary == 0 or self.current == 0:
                return None
            return self.current / self.boundary if self.side == "upper" else self.boundary / self.current
        return self.current - self.boundary if self.side == "upper" else self.boundary - self.current

    def proposal(self, safety: float = 3.0) -> float | None:
        """The boundary moved to the lenient side by a safety margin: a factor ``safety`` on a log
        scale, ``(safety - 1) / 10`` of the boundary's size (at least 0.05) on a linear one, and
        half the boundary (at least 1) for counts."""
        b = self.boundary
        if b is None:
            return None
        sign = 1.0 if self.side == "upper" else -1.0
        if self.scale == "log":
            return b * safety if self.side == "upper" else b / safety
        if self.scale == "int":
            return float(b + sign * max(1, math.ceil(abs(b) / 2)))
        return b + sign * max(0.05, (safety - 1) / 10 * abs(b))


def calibrate(paths: Sequence[str | os.PathLike], kinds: Iterable[str] = ()) -> list[Calibration]:
    """Calibrate every rule with limits (or those named in ``kinds``) over the run records ``paths``.

    Each rule is replayed with the parameters the first run's config gave it (defaults
    otherwise). Raises FileNotFoundError / RecordError for a path that is not a run record.
    """
    from tripwire.record import Run

    runs = []
    for path in paths:
        with Run(path) as run:
            runs.append((run.name, list(run.samples()), run.config))
    wanted = set(kinds)
    rows: list[Calibration] = []
    for name, cls, params in _rules(runs[0][2] if runs else {}):
        if wanted and name not in wanted and cls.kind not in wanted:
            continue
        for limit in cls.limits:
            rows.append(_calibrate_limit(name, cls, params, limit, runs))
    return rows


def _rules(config: dict[str, Any]) -> list[tuple[str, type[Rule], dict[str, Any]]]:
    """``(name, class, params)`` of the rules configured in a record's config, then every other
    built-in rule type under its own name with its defaults."""
    out: list[tuple[str, type[Rule], dict[str, Any]]] = []
    rules = config.get("rules")
    specs = Config().rule_specs() if rules is None else {}  # the record stores RuleSpec dumps
    for name, spec in (rules or {}).items():
        if isinstance(spec, dict) and spec.get("enabled", True):
            specs[name] = RuleSpec(type=spec.get("type", name), params=spec.get("params") or {})
    for name, spec in specs.items():
        try:
            out.append((name, rule_class(spec.type), dict(spec.params)))
        except Exception:  # noqa: BLE001, S112 - a user rule that does not import here is left out
            continue
    kinds = {cls.kind for _, cls, _ in out}
    out += [(kind, cls, {}) for kind, cls in builtin_rules().items() if kind not in kinds]
    return out


def _calibrate_limit(name: str, cls: type[Rule], params: dict[str, Any], limit: Limit,
                     runs: list[tuple[str, list[Sample], dict]]) -> Calibration:
    base = cls.Params.model_validate(params)
    current = getattr(base, limit.param)
    row = Calibration(name, cls.kind, limit.param, limit.side, limit.scale,
                      None if current is None else float(current))
    others = {other.param: other.off for other in cls.limits if other.param != limit.param}
    boundaries = []
    for run_name, samples, _ in runs:
        needed = {need.key for need in cls(name, base).needs()}
        relevant = [s for s in samples if needed & s.stats.keys()]
        if not relevant:
            continue
        row.runs += 1

        def first_fire(value: float) -> int | None:
            rule = cls(name, base.model_copy(update={**others, limit.param: value}))
            for sample in relevant:  # noqa: B023 - called in this iteration only
                if any(v.fired for v in rule.check(sample)):
                    return sample.step
            return None

        try:
            if current is not None and (step := first_fire(current)) is not None:
                row.fired[run_name] = step
            boundary = _boundary(first_fire, limit, current)
        except Exception as exc:  # noqa: BLE001 - a rule that cannot replay this record
            row.note = f"replay failed: {type(exc).__name__}: {exc}"
            return row
        if boundary is not None:
            boundaries.append(boundary)
    if not row.runs:
        row.note = "no data"
    elif not boundaries:
        row.note = "never close"
    else:
        row.boundary = max(boundaries) if limit.side == "upper" else min(boundaries)
    return row


def _boundary(first_fire: Any, limit: Limit, current: float | None) -> float | None:
    """The strictest value of ``limit`` silent on one run, or None when even the strictest value
    tried is silent (no data, or a statistic that never moves)."""
    upper = limit.side == "upper"
    silent = lambda v: first_fire(v) is None
    start = limit.off if current is None or not math.isfinite(float(current)) else float(current)
    if not silent(limit.off):
        return math.inf if upper else -math.inf  # fires even with this test switched off
    if limit.scale == "log":
        return _search_log(silent, upper, start)
    return _search_linear(silent, upper, start, integer=limit.scale == "int")


def _search_log(silent: Any, upper: bool, start: float) -> float | None:
    lo, hi = _LOG_RANGE
    x = min(max(start, lo), hi) if math.isfinite(start) and start > 0 else 1.0
    strict = 0.1 if upper else 10.0  # the factor that makes the test stricter
    if silent(x):  # walk strict until it fires; the boundary lies between
        good = x
        while True:
            nxt = good * strict
            if not lo <= nxt <= hi:
                return None
            if not silent(nxt):
                bad = nxt
                break
            good = nxt
    else:  # walk lenient until silent
        bad = x
        while True:
            nxt = bad / strict
            if not lo <= nxt <= hi:
                return hi if upper else lo
            if silent(nxt):
                good = nxt
                break
            bad = nxt
    for _ in range(_BISECTIONS):
        mid = math.sqrt(good * bad)
        good, bad = (mid, bad) if silent(mid) else (good, mid)
    return good


def _search_linear(silent: Any, upper: bool, start: float, *, integer: bool) -> float | None:
    x = start if math.isfinite(start) else (1.0 if integer else 0.5)
    step = 1.0 if integer else max(abs(x) * 0.1, 0.01)
    strict = -1.0 if upper else 1.0
    if silent(x):
        good = x
        for _ in range(64):
            nxt = good + strict * step
            if integer and nxt < 1:
                return None
            if not silent(nxt):
                bad = nxt
                break
            good, step = nxt, step * 2
        else:
            return None
    else:
        bad = x
        for _ in range(64):
            nxt = bad - strict * step
            if silent(nxt):
                good = nxt
                break
            bad, step = nxt, step * 2
        else:
            return math.inf if upper else -math.inf
    for _ in range(_BISECTIONS if not integer else 64):
        if integer and abs(good - bad) <= 1:
            break
        mid = (good + bad) / 2
        if integer:
            mid = float(round(mid))
        good, bad = (mid, bad) if silent(mid) else (good, mid)
    return good


def format_table(rows: Sequence[Calibration], safety: float = 3.0) -> str:
    """The calibration as a plain-text table, one line per threshold."""
    header = ("rule", "limit", "now", "closest", "margin", "fires now", "proposed")
    body = []
    for r in rows:
        margin = r.margin
        if margin is None:
            shown = "-"
        elif r.scale == "log":
            shown = f"{margin:.3g}x"
        else:
            shown = f"{margin:+.3g}"
        fired = ", ".join(f"{run}@{step}" for run, step in r.fired.items()) or "no"
        proposal = r.proposal(safety)
        body.append((r.rule, r.limit, _num(r.current), _num(r.boundary) if r.boundary is not None else "-", shown,
                     fired, _num(proposal) if proposal is not None else (r.note or "-")))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "off"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"
