"""Patience: how long a rule's condition has held in a row, kept in the rule's plain-dict ``state``.

A rule that fires only once its condition has held ``patience`` times in a row keeps a *streak*
per subject: the number of samples in a row that met the condition (``count``), the step of the
first of them (``since``) and the patience they use up (``length``: the count, or, for the
validation rules, the epochs of training the validations stand for; see
:mod:`tripwire.rules._validation_streak`). A sample that does not meet the condition ends the
streak; what one sample is depends on the rule: a statistics sample for the per-layer rules, a
completed window for the loss rules, a validation for the validation rules.

**One verdict semantics for every rule.** For each subject a sample lets it judge, a rule

- fires when the condition holds and the streak has reached ``patience``;
- clears otherwise, *also while the streak is still counting*: the subject was judged and is not
  at fault yet.

It returns no verdict for a subject only when the sample does not let it judge that subject: the
statistic is absent or not finite, a window is not complete yet, the rule has not started
judging (a warm-up, too few samples). A streak begins only after the sample that ended the
previous one, which cleared the subject, so a clear while counting never re-arms a fault that is
still reported: the engine's findings (once per rule and subject, again only after a clear) are
the same as if the rule said nothing while counting, and the verdicts say what was judged.

Stored as ``holder[key] = [count, since]``, or ``[count, since, length]`` when the length is
not the count (a weighted streak); absent when there is no streak. A bare number, the state of a
checkpoint written before streaks were stored this way, reads as a streak of that length.

Example:
    >>> runs = {}
    >>> hits = [(True, 10), (True, 20), (False, 30), (True, 40)]
    >>> [advance(runs, "fc1.weight", hit, step).count for hit, step in hits]
    [1, 2, 0, 1]
    >>> runs
    {'fc1.weight': [1, 40]}
    >>> streak = advance(runs, "fc1.weight", True, 50)
    >>> streak.reached(2), streak.steps, advance(runs, "fc1.weight", True, 60).reached(3)
    (True, 'steps 40..50', True)

    Weighted, as the validation rules count (two validations per epoch, 0.5 each):

    >>> state = {}
    >>> [advance(state, "over", True, step, weight=0.5).reached(1) for step in (100, 200)]
    [False, True]
    >>> state
    {'over': [2, 100, 1.0]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: how far apart float sums of weights may be and still count as equal: ten validations of 0.1 epoch
#: each reach a patience of 1
TOLERANCE = 1e-9


def reached(length: float, patience: float) -> bool:
    """Whether a streak of ``length`` has reached ``patience`` (tolerant of float sums such as
    three thirds)."""
    return length >= patience - TOLERANCE


@dataclass(frozen=True)
class Streak:
    """A subject's streak after a sample: ``count`` samples in a row met the condition (0: the
    streak ended), the first at step ``since`` (None for a streak restored from an older
    checkpoint), the latest at ``step``; ``length`` is the patience they use up."""

    count: int = 0
    since: int | None = None
    step: int | None = None
    length: float = 0.0

    def reached(self, patience: float) -> bool:
        """Whether the condition has held long enough to fire."""
        return self.count > 0 and reached(self.length, patience)

    @property
    def steps(self) -> str:
        """The steps the streak covers, for a finding's message: ``"step 40"`` or ``"steps 20..40"``."""
        if self.since is None or self.since == self.step:
            return f"step {self.step}"
        return f"steps {self.since}..{self.step}"


def current(holder: dict[str, Any], key: str, step: int | None = None) -> Streak:
    """The streak stored at ``holder[key]``, unchanged (``step``: the latest sample's step)."""
    record = holder.get(key)
    if isinstance(record, (int, float)):  # an older checkpoint's bare count (or length)
        length = float(record)
        return Streak(max(1, math.ceil(length - TOLERANCE)), None, step, length) if length > 0 else Streak(step=step)
    if not record:
        return Streak(step=step)
    count, since, *weighted = record
    return Streak(int(count), since, step, float(weighted[0]) if weighted else float(count))


def end(holder: dict[str, Any], key: str) -> None:
    """End the streak at ``holder[key]`` without a sample (a new best, a class still learning)."""
    holder.pop(key, None)


def advance(holder: dict[str, Any], key: str, hit: bool, step: int, weight: float = 1.0) -> Streak:
    """Extend the streak at ``holder[key]`` by a sample that met the condition (``hit``), adding
    ``weight`` to its length, or end it; return it."""
    if not hit:
        holder.pop(key, None)
        return Streak(step=step)
    before = current(holder, key)
    since = before.since if before.count else step
    count, length = before.count + 1, before.length + weight
    holder[key] = [count, since] if length == count else [count, since, length]
    return Streak(count, since, step, length)
