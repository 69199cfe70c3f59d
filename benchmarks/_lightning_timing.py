"""Step timing of Lightning fits, shared by the Lightning benchmarks (the interleaving, the block
reduction and the medians are ``_timing.py``'s, shared with the plain-loop benchmark).

- :class:`StepTimer`: a timestamp at every batch start (CUDA events on a GPU), reduced to
  per-step times of blocks of ``block`` steps (:func:`_timing.block_times`).
- :class:`HookTime`: the time spent inside a monitor's own hooks (a lower bound of its cost
  that a loaded machine blurs much less than whole-step ratios).
- :func:`interleaved`: :func:`_timing.interleave` over Lightning fits: per repetition, each
  variant next to its own no-callback fit (A/B, then B/A), ratios against that neighbour, medians.

Example (tiny, CPU):
    >>> from _lightning_workloads import SCALES
    >>> res = interleaved(SCALES["quick"]["mlp"], ["none", "floor"], reps=1, steps=10, warmup=2, block=5)
    >>> sorted(res.ratio), res.baseline_ms > 0, res.hook_ms["floor"] > 0
    (['floor', 'none'], True, True)
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from _lightning_monitors import VARIANTS
from _lightning_workloads import Classifier, Workload, quiet, trainer
from _timing import CLOCKS, FitResult, Overhead, block_times, drain_background, interleave
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
        self.clock = CLOCKS[clock]
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
        return block_times(self.seconds(), warmup, block)


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
    tripwires = [cb for cb in extra if isinstance(cb, LightningTripwire)]
    findings = sorted({f.rule for cb in tripwires for f in cb.findings})
    kept = sum(cb.collector.held_bytes() for cb in tripwires if cb.collector is not None)
    interval = tripwires[0].monitor.interval if tripwires else None
    return FitResult(blocks, hooks.ms_per_step(warmup, steps), findings, kept, interval)


def interleaved(workload: Workload, variants: Sequence[str], reps: int, steps: int, warmup: int, block: int,
                device: str = "cpu", precision: str = "32-true", record: bool = True, warm_round: bool = False,
                deadline: float | None = None, clock: str = "wall") -> Overhead:
    """:func:`_timing.interleave` over Lightning fits of ``workload``: per repetition, every variant
    right next to a no-callback fit, ratios against it, medians over repetitions. Each fit is
    ``warmup + steps`` steps (``warmup + block`` in the untimed warm round); tripwire writes its run
    record to a temporary folder unless ``record`` is False.

    ``deadline`` (a ``time.monotonic()`` value) stops adding repetitions once passed (at least one runs).
    """
    record_dir = tempfile.mkdtemp(prefix="tripwire-bench-") if record else None

    def fit(v: str, timed: bool) -> FitResult:
        return fit_once(workload, v, steps if timed else block, warmup, block, device, precision, record_dir,
                        clock=clock)

    try:
        return interleave(workload.name, variants, reps, fit, warm_round, deadline)
    finally:
        if record_dir:
            shutil.rmtree(record_dir, ignore_errors=True)
