"""Interleaved A/B step timing, shared by the overhead benchmarks whatever runs the training.

- :func:`block_times`: timestamps at every step start reduced to per-step times of blocks of
  ``block`` steps; the median block is robust to load spikes and still contains every sampled
  step (a block spans ``block`` steps starting at a multiple of it).
- :func:`interleave`: per repetition, each variant next to its own no-monitor run (A/B, then
  B/A), ratios against that neighbour, medians over repetitions (:class:`Overhead`).
- :func:`drain_background`: waits for tripwire's background threads between runs.

The training itself is a function given to :func:`interleave` (a Lightning fit in
``_lightning_timing.py``, a plain loop in ``overhead_torch.py``).

Example:
    >>> block_times([0.0, 1.0, 2.0, 4.0, 6.0, 7.0], warmup=1, block=2)
    [1.5, 1.5]
    >>> fake = {"none": [0.010] * 3, "slow": [0.012] * 3}
    >>> res = interleave("toy", ["none", "slow"], reps=2, fit=lambda v, timed: FitResult(fake[v]))
    >>> res.baseline_ms, round(res.ratio["slow"], 3), res.per_rep["slow"]
    (10.0, 1.2, [1.2, 1.2])
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: what ``--clock`` picks: wall time, or the CPU time of the whole process (every thread), which does
#: not grow while other programs hold the cores, so it is steadier on a loaded machine
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def block_times(marks: Sequence[float], warmup: int, block: int) -> list[float]:
    """Seconds per step of each full block of ``block`` steps after the first ``warmup`` steps,
    from ``marks``: a time at every step start and one at the end."""
    t = list(marks)[warmup:]
    return [(t[i + block] - t[i]) / block for i in range(0, len(t) - block, block)]


def drain_background(timeout_s: float = 120.0) -> None:
    """Wait for tripwire's background threads (run record writer, alert senders) of finished runs, so
    that none of them still runs, and competes for the CPU, while the next run is timed."""
    for thread in threading.enumerate():
        if thread.name.startswith("tripwire-") and thread is not threading.current_thread():
            thread.join(timeout_s)


@dataclass
class FitResult:
    """Per-step block times of one run, the monitors' in-hook ms/step and tripwire's findings."""

    blocks: list[float]
    hook_ms: float = 0.0
    findings: list[str] = field(default_factory=list)
    kept_bytes: int = 0  # what tripwire keeps between samples (snapshot, accumulators), at the end
    interval: int | None = None  # tripwire's sampling interval at the end (the budget's choice)


@dataclass
class Overhead:
    """Interleaved measurements of one workload: median baseline ms/step, median ratio per variant,
    and each variant's per-repetition ratios (to judge the spread)."""

    workload: str
    baseline_ms: float
    ratio: dict[str, float]
    per_rep: dict[str, list[float]]
    findings: dict[str, list[str]]
    hook_ms: dict[str, float] = field(default_factory=dict)  # median in-hook ms/step, where measured
    kept_bytes: dict[str, int] = field(default_factory=dict)  # the largest over reps, per tripwire variant
    intervals: dict[str, list[int]] = field(default_factory=dict)  # the final interval of each rep

    def cost(self, variant: str) -> float:
        """Step time above the baseline, as a fraction of the baseline (ratio - 1)."""
        return self.ratio[variant] - 1.0


def interleave(workload: str, variants: Sequence[str], reps: int, fit: Callable[[str, bool], FitResult],
                warm_round: bool = False, deadline: float | None = None) -> Overhead:
    """Per repetition, every variant runs right next to a no-monitor run (``"none"``; A/B, then B/A in
    the next repetition), in a rotating order; the variant's ratio for that repetition is its median
    block time over that neighbouring baseline's, so slow drifts in the machine's load cancel out.

    ``fit(variant, timed)`` trains once and returns its :class:`FitResult`; ``timed=False`` asks for a
    short untimed run (the warm-up round, when ``warm_round``: first runs pay one-time costs such as
    imports and allocator growth). ``deadline`` (a ``time.monotonic()`` value) stops adding
    repetitions once passed (at least one runs).
    """
    others = [v for v in variants if v != "none"]
    findings: dict[str, set[str]] = {v: set() for v in ["none", *others]}
    hook_ms: dict[str, list[float]] = {v: [] for v in ["none", *others]}
    per_rep: dict[str, list[float]] = {v: [] for v in ["none", *others]}
    baselines: list[float] = []
    kept: dict[str, int] = {}
    intervals: dict[str, list[int]] = {}

    def run(v: str) -> float:
        res = fit(v, True)
        findings[v].update(res.findings)
        hook_ms[v].append(res.hook_ms)
        if res.interval is not None:
            kept[v] = max(kept.get(v, 0), res.kept_bytes)
            intervals.setdefault(v, []).append(res.interval)
        return statistics.median(res.blocks)

    if warm_round:
        for v in ["none", *others]:
            fit(v, False)
    for rep in range(reps):
        if rep and deadline is not None and time.monotonic() > deadline:
            break
        shift = rep % max(len(others), 1)
        for v in others[shift:] + others[:shift]:
            if rep % 2 == 0:
                base, t = run("none"), run(v)
            else:
                t, base = run(v), run("none")
            baselines.append(base)
            per_rep[v].append(t / base)
        per_rep["none"].append(1.0)
    return Overhead(workload, 1e3 * statistics.median(baselines) if baselines else math.nan,
                    {v: statistics.median(r) if r else math.nan for v, r in per_rep.items()}, per_rep,
                    {v: sorted(f) for v, f in findings.items()},
                    {v: statistics.median(h) if h else math.nan for v, h in hook_ms.items()}, kept, intervals)


def spread(values: Sequence[float]) -> float:
    """Half the distance between the 25th and 75th percentiles (0 for fewer than 2 values)."""
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[2] - q[0]) / 2


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}x"
