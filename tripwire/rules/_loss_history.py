"""Bookkeeping shared by the loss rules, kept in plain dicts inside a rule's ``state``.

Three pieces:

- **Step windows**: consecutive, non-overlapping windows of ``width`` steps, ``(start, start +
  width]``, then the next one. Each ``loss`` sample whose step falls in a window adds to its
  mean (a plain mean over samples: collectors sample at a fixed interval). When a sample
  completes a window, :func:`add_to_window` returns the means of the previous and this window.
- **Train loss since the last validation**: ``val_loss`` arrives in its own sample at the end of
  a validation run; the training loss it is compared with is the mean of the ``loss`` samples
  seen since the previous validation (or the last such mean when none arrived in between).
- **Converged**: whether the training loss has fallen below a share of its first value, for the
  rules that read tiny gradients or updates as a fault (a model that fits its data has them for
  a good reason).
- **Validation noise**: a small validation set makes ``val_loss`` jump between validations;
  :func:`noise` estimates that jitter around the trend and :func:`level` smooths single values.

Example:
    >>> w = new_window(start=0)
    >>> [add_to_window(w, step, loss, width=20) for step, loss in [(10, 4.0), (20, 2.0), (30, 3.0), (40, 3.0)]]
    [None, (None, 3.0), None, (3.0, 3.0)]
    >>> t = new_train_since_val()
    >>> add_train(t, 1.0); add_train(t, 3.0)
    >>> train_reference(t), train_reference(t)
    (2.0, 2.0)
"""

from __future__ import annotations

import math
from typing import Any

from tripwire.stats import Sample


def finite_scalar(sample: Sample, key: str) -> float | None:
    """The run-wide value of ``key`` when present and finite, else None (NaN is ``nonfinite``'s job)."""
    value = sample.scalar(key)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def new_window(start: int) -> dict[str, Any]:
    """State of the windows that begin after step ``start``."""
    return {"start": int(start), "sum": 0.0, "n": 0, "prev": None}


def add_to_window(w: dict[str, Any], step: int, value: float, width: int) -> tuple[float | None, float] | None:
    """Add a value at ``step``; when it completes the current window return ``(previous mean, mean)``.

    Steps at or before ``w["start"]`` (warm-up) are ignored. A sample far past the window end
    (a gap in the stream) closes the current window and starts the next one at the last window
    boundary before ``step``.
    """
    if step <= w["start"]:
        return None
    w["sum"] += value
    w["n"] += 1
    if step < w["start"] + width:
        return None
    mean = w["sum"] / w["n"]
    prev = w["prev"]
    w["start"] += width * ((step - w["start"]) // width)
    w["sum"], w["n"], w["prev"] = 0.0, 0, mean
    return prev, mean


def new_train_since_val() -> dict[str, Any]:
    """State of the training loss accumulated between validations."""
    return {"sum": 0.0, "n": 0, "last": None}


def add_train(t: dict[str, Any], value: float) -> None:
    """Add one ``loss`` sample."""
    t["sum"] += value
    t["n"] += 1


def train_reference(t: dict[str, Any]) -> float | None:
    """Mean training loss since the previous call (or the previous mean when nothing arrived)."""
    if t["n"]:
        t["last"] = t["sum"] / t["n"]
        t["sum"], t["n"] = 0.0, 0
    return t["last"]


def relative_drop(before: float, after: float) -> float:
    """``(before - after) / |before|``: positive when the loss fell (0 when both are 0)."""
    if before == 0:
        return 0.0 if after == 0 else -math.copysign(math.inf, after)
    return (before - after) / abs(before)


def converged(state: dict[str, Any], sample: Sample, below: float) -> bool:
    """Record the sample's training loss in ``state`` (keys ``first_loss``, ``loss``) and tell
    whether the latest one is below ``below`` times the first (positive) one.

    Example:
        >>> st = {}
        >>> [converged(st, Sample(s, stats={"loss": {None: v}}), 0.01) for s, v in [(0, 2.0), (10, 0.5), (20, 0.01)]]
        [False, False, True]
    """
    loss = finite_scalar(sample, "loss")
    if loss is not None:
        state["loss"] = loss
        if state.get("first_loss") is None:
            state["first_loss"] = loss
    first, last = state.get("first_loss"), state.get("loss")
    return first is not None and first > 0 and last is not None and last < below * first


#: validation losses the noise estimate looks back over
NOISE_WINDOW = 20


def level(values: list[float]) -> float:
    """The median of the last 3 values (the mean of 2, or the one): a single outlier moves it not.

    Example:
        >>> level([0.9]), level([0.9, 0.7]), level([0.9, 0.3, 0.8])
        (0.9, 0.8, 0.8)
    """
    last = sorted(values[-3:])
    return last[1] if len(last) == 3 else sum(last) / len(last)


def noise(values: list[float]) -> float:
    """Standard deviation of the noise around a smooth trend in ``values``, from their second
    differences (0 with fewer than 8 values).

    Example:
        >>> smooth = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4]
        >>> round(noise(smooth), 6), round(noise([1.0, 1.2, 0.9, 1.1, 0.8, 1.05, 0.75, 0.95]), 2)
        (0.0, 0.3)
    """
    if len(values) < 8:
        return 0.0
    second = sorted(round(abs(a - 2 * b + c), 12) for a, b, c in zip(values, values[1:], values[2:]))
    mid = len(second) // 2
    median = second[mid] if len(second) % 2 else (second[mid - 1] + second[mid]) / 2
    return median / 0.6745 / math.sqrt(6)
