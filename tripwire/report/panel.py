"""What a plot shows, independent of the plotting library: lines of (step, value) and panels of lines.

Example:
    >>> import numpy as np
    >>> line = Line("loss", np.array([10, 20]), np.array([0.9, 0.5]))
    >>> Panel("loss", [line], threshold=0.6).threshold
    0.6
    >>> steps, grid = aligned([(np.array([10, 20]), np.array([1.0, 2.0])), (np.array([20]), np.array([5.0]))])
    >>> steps.tolist(), grid.tolist()
    ([10, 20], [[1.0, 2.0], [nan, 5.0]])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Line:
    """One plotted series. ``context`` lines are drawn faintly: subjects no finding named.

    ``categories`` turns the line into bars: one value per category (a feature, a class),
    with ``steps`` unused.
    """

    label: str
    steps: np.ndarray
    values: np.ndarray
    context: bool = False
    series: str = ""  # the recorded series name, when the line is one subject of it
    categories: list[str] | None = None


@dataclass
class Panel:
    """One plot: lines on a shared scale, the threshold when it belongs on this scale, and the
    rule's other limits on this scale (``bounds``: (value, label))."""

    title: str
    lines: list[Line] = field(default_factory=list)
    log_y: bool = False
    threshold: float | None = None
    note: str = ""
    threshold_home: bool = False  # draw the threshold here when no plotted value equals the finding's
    bounds: list[tuple[float, str]] = field(default_factory=list)

    def limits(self) -> list[tuple[float, str]]:
        """Every limit drawn on the panel: the finding's threshold, then the other bounds.

        Example:
            >>> Panel("std", threshold=10.0, bounds=[(0.01, "std ≥ 0.01"), (10.0, "std ≤ 10")]).limits()
            [(10.0, 'threshold: std ≤ 10'), (0.01, 'std ≥ 0.01')]
        """
        if self.threshold is None:
            return list(self.bounds)
        same = next((label for v, label in self.bounds if v == self.threshold), None)
        first = (self.threshold, f"threshold: {same}" if same else f"threshold {self.threshold:g}")
        return [first, *((v, label) for v, label in self.bounds if v != self.threshold)]

    @property
    def bars(self) -> bool:
        """Whether the panel is a bar chart over categories rather than lines over steps."""
        return any(ln.categories is not None for ln in self.lines)


def aligned(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Several (steps, values) series on their union of steps: ``(steps, grid[series, step])``,
    NaN where a series has no value."""
    if not series:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    steps = np.unique(np.concatenate([s for s, _ in series]))
    grid = np.full((len(series), len(steps)), np.nan)
    for row, (s, v) in enumerate(series):
        grid[row, np.searchsorted(steps, s)] = v
    return steps, grid


def natural_key(subject: str | None) -> list:
    """Sort key that puts layer2 before layer10."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", subject or "")]
