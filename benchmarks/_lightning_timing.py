"""Interleaved step timing of Lightning fits, shared by the Lightning benchmarks.

- :class:`StepTimer`: a timestamp at every batch start (CUDA events on a GPU), reduced to
  per-step times of blocks of ``block`` steps; the median block is robust to load spikes and
  still contains every sampled step (a block spans ``block`` steps starting at a multiple of it).
- :class:`HookTime`: the time spent inside a monitor's own hooks (a lower bound of its cost
  that a loaded machine blurs much less than whole-step ratios).
- :func:`interleaved`: per repetition, each variant next to its own no-callback run (A/B, then
  B/A), ratios against that neighbour, medians over repetitions.

Example (tiny, CPU):
    >>> from _lightning_workloads import SCALES
    >>> res = interleaved(SCALES["quick"]["mlp"], ["none", "floor"], reps=1, steps=10, warmup=2, block=5)
    >>> sorted(res.ratio), res.baseline_ms > 0, res.hook_ms["floor"] > 0
    (['floor', 'none'], True, True)
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch

from _lightning_monitors import VARIANTS
from _lightning_workloads import Classifier, Workload, quiet, trainer
from tripwire import LightningTripwire


class StepTimer(pl.Callback):
    """A mark at every training batch start and at train end; put it first in the callback list so
    each interval holds everything of one step, every other callback's hooks included.

    On CUDA the marks are events in the stream (no host sync while training; one at the end),
    so a step's time is the device's wall time between two batch starts, idle gaps included.
    On CPU ``clock="wall"`` uses ``time.perf_counter``; ``clock="cpu"`` uses the CPU time of the
    whole process (``time.process_time``: every thread, tripwire's record writer included), which
    does not grow while other programs hold the cores, so it is steadier on a loaded machine.
    """

    def __init__(self, device: str = "cpu", clock: str = "wall") -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.clock = time.process_time if clock == "cpu" else time.perf_counter
        self.marks: list[Any] = []

    def _mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(self.clock())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._mark()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark()

    def seconds(self) -> list[float]:
        """Mark times in seconds from the first mark."""
        if not self.marks:
            return []
        if not self.cuda:
            return [t - self.marks[0] for t in self.marks]
        self.marks[-1].synchronize()
        return [0.0] + [self.marks[0].elapsed_time(e) / 1e3 for e in self.marks[1:]]

    def block_times(self, warmup: int, block: int) -> list[float]:
        """Seconds per step of each full block of ``block`` steps after the first ``warmup`` steps."""
        t = self.seconds()[warmup:]
        return [(t[i + block] - t[i]) / block for i in range(0, len(t) - block, block)]


def drain_background(timeout_s: float = 120.0) -> None:
    """Wait for tripwire's background threads (run record writer, alert senders) of finished fits, so
    that none of them still runs, and competes for the CPU, while the next fit is timed."""
    for thread in threading.enumerate():
        if thread.name.startswith("tripwire-") and thread is not threading.current_thread():
            thread.join(timeout_s)


class HookTime:
    """Host time spent inside the monitors' own hooks, per batch: their callback hooks and, for
    tripwire, its forward hooks on activation modules.

    A lower bound of a monitor's cost that stays readable on a loaded machine (it times only the
    monitor's code, not the whole step). It leaves out what a monitor makes others do (Lightning
    turning logged tensors into floats at batch end, tripwire's record-writer thread) and, on CUDA,
    device time: there it is the host time only.
    """

    HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
             "on_train_batch_end")
    active: HookTime | None = None  # where tripwire's forward hooks report (see time_forward_hooks)

    def __init__(self, timer: StepTimer, callbacks: Sequence[pl.Callback]) -> None:
        self.timer = timer
        self.per_batch: dict[int, float] = {}
        for cb in callbacks:
            for name in self.HOOKS:
                if getattr(type(cb), name) is not getattr(pl.Callback, name):
                    setattr(cb, name, self._timed(getattr(cb, name)))

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(time.perf_counter() - start)

        return timed

    def add(self, seconds: float) -> None:
        """Charge ``seconds`` to the current batch (the timer's latest batch-start mark)."""
        batch = len(self.timer.marks) - 1
        self.per_batch[batch] = self.per_batch.get(batch, 0.0) + seconds

    def ms_per_step(self, warmup: int, steps: int) -> float:
        """Mean milliseconds per step over the timed steps."""
        return 1e3 * sum(v for b, v in self.per_batch.items() if warmup <= b < warmup + steps) / steps


def time_forward_hooks() -> bool:
    """Wrap the forward hooks tripwire's ActivationProbe creates (from now on, in this process) so
    that their time goes to :attr:`HookTime.active`; False when that private factory is not there."""
    from tripwire.callbacks.torch import activations as torch_activations

    probe = getattr(torch_activations, "ActivationProbe", None)
    factory = getattr(probe, "_hook", None)
    if factory is None or getattr(factory, "timed", False):
        return factory is not None

    def timed_factory(self: Any, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        hook = factory(self, *args, **kwargs)

        def timed(*hook_args: Any) -> Any:
            start = time.perf_counter()
            try:
                return hook(*hook_args)
            finally:
                if HookTime.active is not None:
                    HookTime.active.add(time.perf_counter() - start)

        return timed

    timed_factory.timed = True  # type: ignore[attr-defined]
    probe._hook = timed_factory  # type: ignore[union-attr]
    return True


@dataclass
class FitResult:
    """Per-step block times of one fit, the monitors' in-hook ms/step and tripwire's findings."""

    blocks: list[float]
    hook_ms: float = 0.0
    findings: list[str] = field(default_factory=list)


def fit_once(workload: Workload, variant: str, steps: int, warmup: int, block: int, device: str = "cpu",
             precision: str = "32-true", record_dir: str | None = None, seed: int = 0,
             clock: str = "wall") -> FitResult:
    """Train a fresh model (same seed and data for every variant) for ``warmup + steps`` steps."""
    torch.manual_seed(seed)
    module = Classifier(workload.net(), lr=1e-3, optimizer="adam")
    data = workload.loader(warmup + steps, device=device)
    timer = StepTimer(device, clock)
    extra = VARIANTS[variant].callbacks(record_dir)
    time_forward_hooks()
    hooks = HookTime.active = HookTime(timer, extra)
    try:
        with quiet():
            trainer(warmup + steps, [timer, *extra], device, precision, root=record_dir).fit(module, data)
    finally:
        HookTime.active = None
    drain_background()
    blocks = timer.block_times(warmup, block)
    if len(blocks) != steps // block:
        raise RuntimeError(f"{workload.name}/{variant}: expected {steps // block} timed blocks, got {len(blocks)} "
                           f"({len(timer.marks)} marks): did training stop early?")
    findings = sorted({f.rule for cb in extra if isinstance(cb, LightningTripwire) for f in cb.findings})
    return FitResult(blocks, hooks.ms_per_step(warmup, steps), findings)


@dataclass
class Overhead:
    """Interleaved measurements of one workload: median baseline ms/step, median ratio per variant,
    and each variant's per-repetition ratios (to judge the spread)."""

    workload: str
    baseline_ms: float
    ratio: dict[str, float]
    per_rep: dict[str, list[float]]
    findings: dict[str, list[str]]
    hook_ms: dict[str, float] = field(default_factory=dict)  # median in-hook ms/step (see HookTime)

    def cost(self, variant: str) -> float:
        """Step time above the baseline, as a fraction of the baseline (ratio - 1)."""
        return self.ratio[variant] - 1.0


def interleaved(workload: Workload, variants: Sequence[str], reps: int, steps: int, warmup: int, block: int,
                device: str = "cpu", precision: str = "32-true", record: bool = True, warm_round: bool = False,
                deadline: float | None = None, clock: str = "wall") -> Overhead:
    """Per repetition, every variant runs right next to a no-callback run (A/B, then B/A in the next
    repetition), in a rotating order; the variant's ratio for that repetition is its median block
    time over that neighbouring baseline's, so slow drifts in the machine's load cancel out.

    ``deadline`` (a ``time.monotonic()`` value) stops adding repetitions once passed (at least one runs).
    """
    others = [v for v in variants if v != "none"]
    record_dir = tempfile.mkdtemp(prefix="tripwire-bench-") if record else None

    def run(v: str) -> float:
        res = fit_once(workload, v, steps, warmup, block, device, precision, record_dir, clock=clock)
        findings[v].update(res.findings)
        hook_ms[v].append(res.hook_ms)
        return statistics.median(res.blocks)

    findings: dict[str, set[str]] = {v: set() for v in ["none", *others]}
    hook_ms: dict[str, list[float]] = {v: [] for v in ["none", *others]}
    baselines: list[float] = []
    per_rep: dict[str, list[float]] = {v: [] for v in ["none", *others]}
    try:
        if warm_round:  # first fits pay one-time costs (imports, allocator growth); not timed
            for v in ["none", *others]:
                fit_once(workload, v, block, warmup, block, device, precision, record_dir, clock=clock)
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
    finally:
        if record_dir:
            shutil.rmtree(record_dir, ignore_errors=True)
    return Overhead(workload.name, 1e3 * statistics.median(baselines) if baselines else math.nan,
                    {v: statistics.median(r) if r else math.nan for v, r in per_rep.items()}, per_rep,
                    {v: sorted(f) for v, f in findings.items()},
                    {v: statistics.median(h) if h else math.nan for v, h in hook_ms.items()})


def spread(values: Sequence[float]) -> float:
    """Half the distance between the 25th and 75th percentiles (0 for fewer than 2 values)."""
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[2] - q[0]) / 2


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}x"
