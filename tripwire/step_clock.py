"""`StepClock`: host wall time of training steps, plain and sampled, for the overhead budget.

An adapter calls :meth:`StepClock.begin` when a step's (first) batch starts; the time to the next
step's start is that step's wall time. A step whose span held something else (a validation run,
a checkpoint) is :meth:`interrupted <StepClock.interrupt>` and not measured. The adapter also
hands over the time its hooks took (:meth:`StepClock.spent`): what a plain step spends in them is
tripwire's fixed cost, paid on every step whether it is sampled or not. :meth:`StepClock.take`
returns the last sampled step's time beyond the median plain step's, that median, and the mean
time a plain step spent in the hooks, for :meth:`tripwire.schedule.Schedule.measured`. The clock
reads ``time.perf_counter`` only: nothing on the device, no sync.

Example:
    >>> clock = StepClock()
    >>> for step, start in enumerate([0.0, 0.010, 0.020, 0.035, 0.045]):   # step 2 is sampled
    ...     clock.begin(step, sampled=step == 2, now=start)
    ...     clock.spent(0.00005)                                          # 50 us in the hooks
    >>> [round(seconds, 6) for seconds in clock.take()]   # 15 ms against 10 ms plain steps
    [0.005, 0.01, 5e-05]
    >>> clock.take() is None   # nothing new measured
    True
"""

from __future__ import annotations

import statistics
import time
from collections import deque

#: plain steps the median step time and the mean time in the hooks are taken over
PLAIN_WINDOW = 32


class StepClock:
    """Wall time of plain and sampled steps."""

    def __init__(self) -> None:
        self._step: int | None = None
        self._start = 0.0
        self._sampled = False
        self._interrupted = False
        self._plain: deque[float] = deque(maxlen=PLAIN_WINDOW)
        self._hooks = 0.0  # seconds the step in progress spent in the adapter's hooks
        self._plain_hooks: deque[float] = deque(maxlen=PLAIN_WINDOW)
        self._last_sampled: float | None = None

    def begin(self, step: int, sampled: bool, now: float | None = None) -> None:
        """Step ``step`` starts (a later micro-batch of the same step changes nothing)."""
        if step == self._step:
            return
        now = time.perf_counter() if now is None else now
        if self._step is not None and not self._interrupted:
            wall = now - self._start
            if self._sampled:
                self._last_sampled = wall
            else:
                self._plain.append(wall)
                self._plain_hooks.append(self._hooks)
        self._step, self._start, self._sampled, self._interrupted = step, now, sampled, False
        self._hooks = 0.0

    def spent(self, seconds: float) -> None:
        """The step in progress spent ``seconds`` in the adapter's hooks."""
        self._hooks += seconds

    def interrupt(self) -> None:
        """The step in progress also spans something that is not training (not measured)."""
        self._interrupted = True

    def take(self) -> tuple[float, float, float] | None:
        """``(cost, plain, fixed)``: the last sampled step's seconds beyond the median plain step,
        that median, and the mean seconds a plain step spent in the hooks (a mean: the steps whose
        labels are counted cost more than the others); None when no sampled step was measured since
        the last call, or no plain one yet."""
        if self._last_sampled is None or not self._plain:
            return None
        plain = statistics.median(self._plain)
        cost, self._last_sampled = self._last_sampled - plain, None
        return cost, plain, statistics.fmean(self._plain_hooks)
