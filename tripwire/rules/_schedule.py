"""Whether the learning-rate schedule explains small or absent updates, for the rules that read
them as a fault: a schedule warming up from ~0 or annealing to 0 makes them on purpose.
:func:`at_rest` adds the other good reason, a converged model.

Example:
    >>> from tripwire.stats import Sample
    >>> st = {}
    >>> lrs = [0.0, 1e-6, 1e-3, 1e-3, 1e-4, 1e-6]  # warm-up, plateau, anneal
    >>> [schedule_explains(st, Sample(10 * i, stats={"lr": {None: lr}}), 0.01) for i, lr in enumerate(lrs)]
    [False, True, True, False, False, True]
    >>> st = {}
    >>> [schedule_explains(st, Sample(10 * i, stats={"lr": {None: 1e-9}}), 0.01) for i in range(3)]  # tiny throughout
    [False, False, False]
"""

from __future__ import annotations

from typing import Any

from tripwire.rules._loss_history import converged, finite_scalar
from tripwire.stats import Sample


def schedule_explains(state: dict[str, Any], sample: Sample, below: float) -> bool:
    """Record the sample's learning rate in ``state`` (keys ``peak_lr``, the largest so far, and
    ``last_lr``) and tell whether the schedule accounts for small updates now: the rate rose since
    the previous sample (a warm-up, whose early rates are tiny next to the peak to come) or it is
    below ``below`` times the peak (annealed). A rate that stays tiny from the start explains
    nothing. False while no learning rate was reported."""
    lr = finite_scalar(sample, "lr")
    if lr is None:
        return False
    last = state.get("last_lr")
    peak = max(state.get("peak_lr") or 0.0, lr)
    state["peak_lr"], state["last_lr"] = peak, lr
    return (last is not None and lr > last) or lr < below * peak


def at_rest(state: dict[str, Any], sample: Sample, converged_below: float, lr_decayed_below: float) -> bool:
    """Whether small or absent updates are expected now: the model has converged (training loss
    below ``converged_below`` of its first value) or :func:`schedule_explains` them. Both checks
    always run: each records this sample in ``state``."""
    return converged(state, sample, converged_below) | schedule_explains(state, sample, lr_decayed_below)
