"""What every framework's ``loss_spike`` judgement shares: its statistics, its refresh schedule, the
constants of its robust scale, and which series a rule's needs ask for.

A series keeps the logarithms of its last ``window`` values and, every :data:`REFRESH` steps,
turns them into a shift and a scale::

    scale = max(MAD_TO_SD * MAD, (largest - median) / expected_largest(n), SCALE_FLOOR)

The torch adapters (:mod:`tripwire.callbacks.torch.spike`) and Keras
(:mod:`tripwire.callbacks.keras.spike`) compute it in their own tensors; the numbers come from here.

Example:
    >>> round(expected_largest(128), 2)
    2.42
    >>> from tripwire.stats import Need
    >>> history = (("series", "loss"), ("warmup", 16), ("window", 32))
    >>> series_settings([Need("spike_count", (*history, ("limit", 6.0))), Need("spike_max_z", history)])
    [('loss', 32, 16, 6.0)]
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import NormalDist

from tripwire.stats import Need

#: the catalogue statistics of a spike judgement, in the order each series reports them
SPIKE_STATS = ("spike_count", "spike_max_z", "spike_last_step")
#: steps between two recomputations of a series' median and scale
REFRESH = 8
#: the smallest scale of the logarithms: a series that hardly varies (a full-batch loss) still needs
#: to grow by about ``limit`` percent to spike
SCALE_FLOOR = 0.01
#: MAD of a normal distribution x this = its standard deviation
MAD_TO_SD = 1.4826


def expected_largest(n: int) -> float:
    """About the expected largest of ``n`` standard normal draws: the quantile at ``1 - 1/(n + 1)``
    (1.0 below 2 draws, which no judgement uses: it waits for ``warmup`` >= 2 values)."""
    return NormalDist().inv_cdf(1.0 - 1.0 / (n + 1)) if n >= 2 else 1.0


def need_settings(need: Need) -> tuple[str, int, int, float]:
    """``(series, window, warmup, limit)`` of a spike need."""
    return (str(need.setting("series")), int(need.setting("window")), int(need.setting("warmup")),
            float(need.setting("limit")))


def series_settings(needs: Iterable[Need]) -> list[tuple[str, int, int, float]]:
    """The series a rule set's spike needs ask for, one per history, sorted. The limit comes with
    the ``spike_count`` needs; ``spike_max_z`` and ``spike_last_step`` leave it out, so that
    ``tripwire calibrate`` can replay a rule with other limits over the same series."""
    needs = [n for n in needs if n.stat in SPIKE_STATS]
    counted = {need_settings(n) for n in needs if n.stat == "spike_count"}
    uncounted = {need_settings(n) for n in needs if need_settings(n)[:3] not in {s[:3] for s in counted}}
    return sorted(counted | uncounted)


def state_key(settings: tuple[str, int, int, float]) -> str:
    """The key under which a series' history is saved in a checkpoint (the same in every adapter).

    Example:
        >>> state_key(("loss", 32, 16, 6.0))
        'loss,32,16,6.0'
    """
    return ",".join(map(str, settings))


def series_needs(needs: Iterable[Need], settings: tuple[str, int, int, float]) -> list[Need]:
    """The spike needs that the series of ``settings`` answers: its ``spike_count`` (whose limit
    is part of the settings), and the ``spike_max_z`` and ``spike_last_step`` of its history."""
    return [n for n in needs if n.stat in SPIKE_STATS and (need_settings(n) == settings or (
        n.stat != "spike_count" and need_settings(n)[:3] == settings[:3]))]


def series_stats(needs: Iterable[Need], count: float, max_z: float, last: float) -> dict[str, dict[None, float]]:
    """A series' report since its previous one, keyed as ``needs`` (:func:`series_needs`) ask: the
    count of spiking steps; the largest z once a verdict was made; the last spiking step once one
    spiked.

    Example:
        >>> need = Need("spike_last_step", (("series", "loss"), ("warmup", 16), ("window", 32)))
        >>> series_stats([need], count=0.0, max_z=2.0, last=-1.0), series_stats([need], 1.0, 9.0, 17.0)
        ({}, {'spike_last_step[series=loss,warmup=16,window=32]': {None: 17.0}})
    """
    out: dict[str, dict[None, float]] = {}
    for need in needs:
        if need.stat == "spike_count":
            out[need.key] = {None: count}
        elif need.stat == "spike_last_step" and count > 0:
            out[need.key] = {None: last}
        elif need.stat == "spike_max_z" and max_z > float("-inf"):
            out[need.key] = {None: max_z}
    return out
