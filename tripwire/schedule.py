"""`Schedule`: which steps are sampled, and what sampling costs.

Pinned (the default, ``interval: N``): steps 0, N, 2N, ... are sampled, whatever they cost.

Budgeted (``overhead_budget: 0.01`` without an ``interval``): the monitor measures what a sampled
step costs beyond a plain one, and what every step pays in its hooks whether it is sampled or
not, and sets the interval so that the two together take at most that share of training time,
within ``[min_interval, max_interval]`` so that detection latency stays bounded. It starts at the
config's ``interval`` and adapts once a few samples were measured.

An adapter times its steps and its hooks on the host (a
:class:`~tripwire.step_clock.StepClock`: no device sync is added; on an accelerator the flush's
host read, which waits for the device, is where a sampled step's device work shows up). Per
sampled step it hands the measurement back through :meth:`Schedule.measured` (``cost`` = the
sampled step's time beyond the median plain step's; ``fixed`` = a plain step's time in the
hooks). In a data-parallel run the adapter reduces the measurement across ranks first (it rides
in the packed statistics vector, reduced with ``max``), so every rank computes the same interval
from the same numbers.

Example:
    >>> s = Schedule(interval=10, budget=0.01, min_interval=1, max_interval=100)
    >>> [step for step in range(25) if s.due(step)]
    [0, 10, 20]
    >>> for _ in range(3):
    ...     s.measured(cost=0.002, plain=0.010)   # 2 ms per sample on a 10 ms step
    >>> s.interval                                 # 0.2 ms per step is 2% of a step: sample half as often
    20
    >>> s.summary()
    'tripwire used 2.0% of training time; sampled every 20 steps (overhead budget 1%)'
    >>> hooked = Schedule(interval=10, budget=0.01, min_interval=1, max_interval=100)
    >>> for _ in range(3):
    ...     hooked.measured(cost=0.002, plain=0.010, fixed=0.00005)   # and 50 us in every step's hooks
    >>> hooked.interval                            # 0.05 ms per step is left for sampling
    40
    >>> pinned = Schedule(interval=10)
    >>> [step for step in range(25) if pinned.due(step)], pinned.budgeted
    ([0, 10, 20], False)
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

from tripwire.config import Config

#: measurements the interval is chosen from (the median of the last ones)
WINDOW = 8
#: measurements needed before the interval changes
MIN_MEASURED = 3
#: the interval changes only when the new one differs from it by more than this factor
#: (measurements are noisy; an interval that jumps every sample is harder to reason about)
HYSTERESIS = 1.25


class Schedule:
    """Sampling schedule of one run.

    Args:
        interval: steps between samples (pinned), or the first interval (budgeted).
        budget: the share of training time sampling may take (``overhead_budget``); None: pinned.
        min_interval: the shortest interval a budget may choose (default: the config's).
        max_interval: the longest interval a budget may choose (default: the config's).
    """

    def __init__(self, interval: int, budget: float | None = None, min_interval: int | None = None,
                 max_interval: int | None = None) -> None:
        defaults = Config.model_fields
        min_interval = defaults["min_interval"].default if min_interval is None else min_interval
        max_interval = defaults["max_interval"].default if max_interval is None else max_interval
        self.budget = budget
        self.min_interval, self.max_interval = min_interval, max_interval
        self.interval = interval if budget is None else min(max(interval, min_interval), max_interval)
        self.start_interval = self.interval
        self.next_due = 0
        self._costs: deque[float] = deque(maxlen=WINDOW)
        self._plains: deque[float] = deque(maxlen=WINDOW)
        self._fixed: deque[float] = deque(maxlen=WINDOW)
        self.sampling_time = 0.0  # seconds of sampled steps beyond plain ones and in every step's hooks, summed
        self.training_time = 0.0  # seconds of measured steps, summed

    @property
    def budgeted(self) -> bool:
        """Whether the interval follows the overhead budget."""
        return self.budget is not None

    def due(self, step: int) -> bool:
        """Whether step ``step`` is sampled (budgeted: it also schedules the next sample)."""
        if not self.budgeted:
            return step % self.interval == 0
        if step < self.next_due:
            return False
        self.next_due = step + self.interval
        return True

    def labels_due(self, step: int) -> bool:
        """Whether the labels of step ``step``'s batches are counted: every ``interval`` steps of the
        start (10 by default), whatever interval a budget chose. A class count is cheap (one small
        reduction of a batch's labels) and ``class_imbalance`` waits for ``min_samples`` labels, so
        a budget that samples every 100 steps of a short run would otherwise leave it without a
        verdict. Pinned, these are the sampled steps.

        Example:
            >>> s = Schedule(interval=10, budget=0.01)
            >>> s.interval = 100                      # what the budget chose
            >>> [step for step in range(35) if s.labels_due(step)]
            [0, 10, 20, 30]
        """
        return step % self.start_interval == 0

    def latest_due(self, start: int, stop: int) -> int | None:
        """The latest pinned sampled step of ``range(start, stop)``, or None (several steps between
        two callbacks: Keras with ``steps_per_execution > 1``)."""
        last = stop - 1
        due = last - last % self.interval
        return due if last >= start and due >= start else None

    def measured(self, cost: float, plain: float, fixed: float = 0.0) -> None:
        """One sampled step's measurement: ``cost`` seconds beyond a plain step of ``plain``
        seconds, of which ``fixed`` seconds are spent in the hooks; it stands for ``interval`` plain
        steps of training and the sample's cost."""
        if not (math.isfinite(cost) and math.isfinite(plain) and math.isfinite(fixed)) or plain <= 0:
            return
        cost, fixed = max(cost, 0.0), max(fixed, 0.0)
        self.sampling_time += cost + fixed * self.interval
        self.training_time += plain * self.interval + cost
        self._costs.append(cost)
        self._plains.append(plain)
        self._fixed.append(fixed)
        if self.budgeted and len(self._costs) >= MIN_MEASURED:
            self._adapt()

    def _adapt(self) -> None:
        cost, plain = statistics.median(self._costs), statistics.median(self._plains)
        room = self.budget * plain - statistics.median(self._fixed)  # type: ignore[operator]  # per step, for samples
        if cost <= 0:
            wanted = self.min_interval
        else:
            wanted = math.ceil(cost / room) if room > 0 else self.max_interval
        wanted = min(max(wanted, self.min_interval), self.max_interval)
        if wanted == self.interval or 1 / HYSTERESIS < wanted / self.interval < HYSTERESIS:
            return
        self.next_due += wanted - self.interval  # the sample already scheduled moves with it
        self.interval = wanted

    @property
    def overhead(self) -> float | None:
        """Measured share of training time spent sampling, or None before any measurement."""
        return self.sampling_time / self.training_time if self.training_time > 0 else None

    def summary(self, step_word: str = "step") -> str:
        """One phrase for the end-of-run summary: the interval, and the measured overhead if any."""
        every = f"sampled every {self.interval} {step_word}s"
        if self.budgeted:
            every += f" (overhead budget {self.budget * 100:.3g}%)"
        used = self.overhead
        return every if used is None else f"tripwire used {used:.1%} of training time; {every}"

    def state_dict(self) -> dict[str, Any]:
        """The adapted interval and the next sampled step (a resumed run keeps its pace)."""
        return {"interval": self.interval, "next_due": self.next_due} if self.budgeted else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (ignored when pinned)."""
        if self.budgeted and state:
            self.interval = int(state.get("interval", self.interval))
            self.next_due = int(state.get("next_due", self.next_due))
