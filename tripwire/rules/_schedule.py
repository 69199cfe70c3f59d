"""Whether a learning-rate schedule has wound the learning rate down, for the rules that read
small or absent updates as a fault (a schedule annealing to 0 makes them on purpose).

Example:
    >>> from tripwire.stats import Sample
    >>> st = {}
    >>> [annealed(st, Sample(s, stats={"lr": {None: lr}}), 0.01) for s, lr in [(0, 1e-3), (10, 1e-4), (20, 1e-6)]]
    [False, False, True]
    >>> annealed({}, Sample(0, stats={"lr": {None: 1e-9}}), 0.01)  # tiny from the start: not a schedule
    False
"""

from __future__ import annotations

from typing import Any

from tripwire.rules._loss_history import finite_scalar
from tripwire.stats import Sample


def annealed(state: dict[str, Any], sample: Sample, below: float) -> bool:
    """Record the sample's learning rate (key ``peak_lr`` in ``state``: the largest seen) and tell
    whether it is below ``below`` times that peak. False while no learning rate was reported."""
    lr = finite_scalar(sample, "lr")
    if lr is None:
        return False
    peak = max(state.get("peak_lr") or 0.0, lr)
    state["peak_lr"] = peak
    return lr < below * peak
