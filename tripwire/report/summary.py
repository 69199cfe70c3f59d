"""The end-of-run summary every callback prints when training ends or stops.

One line when nothing fired; otherwise a compact table (rule, subject, first step, message),
one row per (rule, subject), and where the run record and the report are. Plain text: no
plotting library, no record access, so it is safe to call from any callback.

Example:
    >>> print(format_summary([], sampled_steps=40))
    tripwire: no findings in 40 sampled steps
    >>> from tripwire.finding import Finding
    >>> f = Finding(rule="dead_relu", kind="dead_relu", step=120, epoch=1, severity="warning",
    ...             subject="fc1", value=0.8, threshold=0.5, message="80% of fc1 is dead", suggestion="lower the LR")
    >>> print(format_summary([f], record_path="runs/r1/record.sqlite"))
    tripwire: 1 finding (1 warning)
      rule       subject  first step  message
      dead_relu  fc1             120  80% of fc1 is dead
      record: runs/r1/record.sqlite
      report: run `tripwire report runs/r1` to see it plotted
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from tripwire.finding import SEVERITIES, Finding
from tripwire.run_end import RunEnd

_SUBJECT_WIDTH = 40
_MESSAGE_WIDTH = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # a layer name must not move the cursor or recolor the terminal


def format_summary(findings: Iterable[Finding], record_path: str | os.PathLike | None = None,
                   report_path: str | os.PathLike | None = None, *, sampled_steps: int | None = None,
                   stopped_by: Finding | None = None, switched_off: dict[str, str] | None = None,
                   step_word: str = "step", end: RunEnd | None = None,
                   repeats: Mapping[tuple[str, str | None], int] | None = None, schedule: str | None = None) -> str:
    """Text to print at the end of training.

    Args:
        findings: the run's findings, in the order they fired.
        record_path: the run record file (or directory), when one was written.
        report_path: the HTML report, when one was written.
        sampled_steps: how many steps were sampled (named in the no-findings line).
        stopped_by: the finding that stopped training, if one did.
        switched_off: instrumentation parts that failed and were switched off (``{part: reason}``).
        step_word: what a step is called (``round`` for XGBoost; see :mod:`tripwire.wording`).
        end: how the run ended; a crash, or an exit with tripwire open, is named in the first line.
        repeats: how often each ``(rule, subject)`` fired again before it re-armed (counted in its row).
        schedule: what sampling cost and how often it ran (under ``overhead_budget``), a line of its own.

    Example:
        >>> print(format_summary([], sampled_steps=3, end=RunEnd("crashed", step=20, error="ValueError")))
        tripwire: no findings in 3 sampled steps; training crashed: ValueError left training; last sample at step 20
    """
    findings = list(findings)
    where = _where(record_path, report_path)
    off = [f"  switched off after an internal error: {_clean(part)} ({_clean(why)})"
           for part, why in (switched_off or {}).items()]
    if schedule:
        off.insert(0, f"  {schedule}")
    if not findings:
        plural = "" if sampled_steps == 1 else "s"
        in_steps = f" in {sampled_steps} sampled {step_word}{plural}" if sampled_steps else ""
        line = f"tripwire: no findings{in_steps}{_ending(end, step_word)}"
        return "\n".join([line + (f" (record: {_clean(str(record_path))})" if record_path else ""), *off])

    counts = {s: sum(f.severity == s for f in findings) for s in reversed(SEVERITIES)}
    by_severity = ", ".join(f"{n} {s}{'' if n == 1 else 's'}" for s, n in counts.items() if n)
    head = f"tripwire: {len(findings)} finding{'' if len(findings) == 1 else 's'} ({by_severity})"
    if stopped_by is not None:
        head += f"; training stopped at {step_word} {stopped_by.step} by {_clean(stopped_by.rule)}"
    else:
        head += _ending(end, step_word)

    rows = _rows(findings, repeats or {})
    header = ("rule", "subject", f"first {step_word}", "message")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    lines = [head, "  " + _row(header, widths)]
    lines += ["  " + _row(r, widths) for r in rows]
    lines += ["  " + w for w in where]
    return "\n".join(lines + off)


def _ending(end: RunEnd | None, step_word: str) -> str:
    """The end of the first line for a run that did not end the ordinary way."""
    if end is None or end.state not in ("crashed", "exited"):
        return ""
    told = _clean(end.describe(step_word))
    return f"; training {told}" if end.state == "crashed" else f"; {told}"


def _rows(findings: list[Finding], repeats: Mapping[tuple[str, str | None], int]) -> list[tuple[str, str, str, str]]:
    """One row per (rule, subject): the first step it fired, and how often when it fired again."""
    first: dict[tuple[str, str | None], tuple[Finding, int]] = {}
    for f in findings:
        key = (f.rule, f.subject)
        seen, n = first.get(key, (f, 0))
        first[key] = (seen if seen.step <= f.step else f, n + 1)
    rows = []
    for (rule, subject), (f, n) in sorted(first.items(), key=lambda kv: (kv[1][0].step, kv[0][0])):
        n += repeats.get((rule, subject), 0)
        message = _clean(f.message) + (f" (fired {n} times)" if n > 1 else "")
        rows.append((_clean(rule), _cut(_clean(subject or "-"), _SUBJECT_WIDTH), str(f.step),
                     _cut(message, _MESSAGE_WIDTH)))
    return rows


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    rule, subject, step, message = cells
    return f"{rule:<{widths[0]}}  {subject:<{widths[1]}}  {step:>{widths[2]}}  {message}".rstrip()


def _where(record_path: str | os.PathLike | None, report_path: str | os.PathLike | None) -> list[str]:
    out = []
    if record_path:
        out.append(f"record: {_clean(str(record_path))}")
    if report_path:
        out.append(f"report: {_clean(str(report_path))}")
    elif record_path:
        run_dir = Path(record_path)
        run_dir = run_dir.parent if run_dir.suffix == ".sqlite" else run_dir
        out.append(f"report: run `tripwire report {_clean(str(run_dir))}` to see it plotted")
    return out


def _clean(text: str) -> str:
    """Control characters shown as escapes, so a hostile name cannot rewrite the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
