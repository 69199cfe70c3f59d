"""Y axes that show every value and every limit of a panel.

A statistic that spans decades (mean |grad|, an update ratio, a variance) goes on a log axis
with one labelled tick per decade (``10⁻⁷``, not plotly's ``5, 2, 10, 5, 2, 1``); its zeros,
which a log axis cannot show, are drawn on a row of their own one decade below the smallest
positive value or limit, labelled ``0``, so a 1e-7 threshold lies above them instead of on top
of a zero line. A linear axis of all-zero data spans [0, 1] (a share, a flag), not plotly's
[-1, 1]; every axis includes the limits drawn on it, so neither a threshold nor the top of the
largest bar is cut off.

Example:
    >>> import numpy as np
    >>> ax = y_axis([np.array([0.0, 1e-9, 1e-3])], [1e-7], log=True)
    >>> ax.log, ax.ticktext[:3], ax.place(np.array([0.0, 1e-9])).tolist()
    (True, ['0', '10<sup>-9</sup>', '10<sup>-8</sup>'], [1e-10, 1e-09])
    >>> y_axis([np.zeros(3)], [], log=False).range
    [-0.05, 1.05]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_TICKS = 8


@dataclass
class YAxis:
    """How one panel's y axis is drawn: ``range`` is in axis units (log10 on a log axis)."""

    log: bool
    range: list[float] | None = None
    tickvals: list[float] = field(default_factory=list)
    ticktext: list[str] = field(default_factory=list)
    zero: float | None = None  # where zeros are drawn on a log axis

    def place(self, values: np.ndarray) -> np.ndarray:
        """Values as drawn: on a log axis, zeros on the zero row and negatives left out."""
        if not self.log:
            return values
        with np.errstate(invalid="ignore"):
            shown = np.where(values > 0, values, np.nan)
            if self.zero is not None:
                shown = np.where(values == 0, self.zero, shown)
        return shown

    def layout(self) -> dict:
        """Keyword arguments for plotly's ``update_yaxes``."""
        out: dict = {"type": "log" if self.log else "linear"}
        if self.range is not None:
            out["range"] = self.range
        if self.tickvals:
            out.update(tickmode="array", tickvals=self.tickvals, ticktext=self.ticktext)
        return out


def y_axis(values: Sequence[np.ndarray], limits: Sequence[float], *, log: bool, bars: bool = False) -> YAxis:
    """The axis for ``values`` (every line or bar series of a panel) and the ``limits`` drawn on it.

    A log axis is kept when every finite value is >= 0 and something is positive; otherwise linear.
    """
    finite = np.concatenate([np.asarray(v, dtype=float)[np.isfinite(v)] for v in values] or [np.zeros(0)])
    marks = np.asarray([x for x in limits if x is not None and math.isfinite(x)], dtype=float)
    every = np.concatenate([finite, marks])
    positive = every[every > 0]
    if log and len(positive) and not (every < 0).any():
        return _log_axis(positive, has_zero=bool((finite == 0).any()), bars=bars)
    return _linear_axis(every, bars=bars)


def _log_axis(positive: np.ndarray, *, has_zero: bool, bars: bool) -> YAxis:
    lo = math.floor(math.log10(positive.min()))
    hi = math.ceil(math.log10(positive.max()))
    hi = max(hi, lo + 1)
    bottom = lo - 1 if has_zero else lo
    every = max(1, math.ceil((hi - lo + 1) / MAX_TICKS))
    decades = list(range(lo, hi + 1, every))
    pad = 0.0 if bars and has_zero else 0.3 if bars else 0.15  # a bar at the bottom would have no height
    ax = YAxis(log=True, range=[bottom - pad, hi + 0.15],
               tickvals=[10.0 ** k for k in decades], ticktext=[_decade(k) for k in decades])
    if has_zero:
        ax.zero = 10.0 ** bottom
        ax.tickvals.insert(0, ax.zero)
        ax.ticktext.insert(0, "0")
    return ax


def _linear_axis(every: np.ndarray, *, bars: bool) -> YAxis:
    if not len(every):
        return YAxis(log=False, range=[-0.05, 1.05])
    lo, hi = float(every.min()), float(every.max())
    if bars or lo == hi:
        lo = min(lo, 0.0)
    if lo == hi:  # all zero (a share that never rose, a flag never set): show [0, 1]
        hi = lo + 1.0
    pad = 0.05 * (hi - lo)
    return YAxis(log=False, range=[lo - (0 if bars and lo == 0 else pad), hi + pad])


def _decade(k: int) -> str:
    """Tick text of 10**k."""
    return {0: "1", 1: "10", 2: "100"}.get(k, f"10<sup>{k}</sup>")
