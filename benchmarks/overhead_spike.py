"""Per-step cost of `loss_spike` (judged on the device at every step) and its `skip_step` action in a
plain PyTorch loop on CPU.

The workloads, batches, Adam and the interleaved timing are ``overhead_torch.py``'s (``_timing.py``:
every repetition runs each variant right next to a no-monitor run, a cell is the median over
repetitions of the ratio to that neighbour). Columns: nothing (A/A, the noise), tripwire with only
``loss_spike`` (``actions: [alert]``: the loss and the global gradient norm judged every step, the
spike counts flushed every 10 steps), the same judging the loss only (no gradient-norm pass), and
both series with ``skip_step`` (the step's verdict read before the update), and both with ``rollback``
(a host copy of the model and Adam's state every 100 steps); and, for reference, the global
gradient norm alone read at every step (the pass ``clip_grad_norm_`` makes: what any exact
per-step gradient norm costs). Beside the step-time ratios,
the time spent inside tripwire's calls (its optimizer pre-hook and ``tw.step``) per step, which the
machine's load blurs much less.

Usage:
    python benchmarks/overhead_spike.py                  # 5 reps x 200 steps, 1 thread
    python benchmarks/overhead_spike.py --workloads mlp --reps 3
    python benchmarks/overhead_spike.py --quick          # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from typing import Any

import torch

import _torch_monitors
from _lightning_workloads import SCALES, Workload
from _overhead_report import add_arguments, load, machine, ratio_table, run_line, settings
from _timing import FitResult, interleave
from _torch_monitors import LoopMonitor, TripwireMonitor, Variant
from overhead_torch import train

SPIKE = {"rules": {"loss_spike": {"actions": ["alert"]}}}
LOSS_ONLY = {"rules": {"loss_spike": {"series": ["loss"], "actions": ["alert"]}}}
SKIP = {"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}}}
ROLLBACK = {"rules": {"loss_spike": {"actions": ["alert", "rollback"]}}}  # a state kept every 100 steps
COLUMNS = ["aa", "spike", "spike_loss", "spike_skip", "spike_rollback", "norm"]


class TimedTripwire(TripwireMonitor):
    """``TripwireMonitor`` that also adds up the time spent inside tripwire's optimizer pre-hook and
    ``tw.step``: :attr:`seconds`."""

    def __init__(self, model: torch.nn.Module, optimizer: Any, config: Any, record_dir: str | None) -> None:
        super().__init__(model, optimizer, config, record_dir)
        self.seconds = 0.0
        driver = self.tw.driver
        inner = driver.before_optimizer_step

        def timed(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            inner(*args, **kwargs)
            self.seconds += time.perf_counter() - start

        driver.before_optimizer_step = timed  # the loop's step pre-hook calls it through the instance

    def after_step(self, loss: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        start = time.perf_counter()
        super().after_step(loss, inputs, labels)
        self.seconds += time.perf_counter() - start


class TimedNorm(LoopMonitor):
    """The reference for the gradient-norm series: the global gradient norm read as a float at every
    step (``torch.nn.utils.get_total_norm``, the pass ``clip_grad_norm_`` makes), and nothing else.
    Its time, :attr:`seconds`, is the floor of any exact per-step gradient norm."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.seconds = 0.0

    def before_step(self) -> None:
        start = time.perf_counter()
        float(torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None]))
        self.seconds += time.perf_counter() - start


VARIANTS = {
    "none": _torch_monitors.VARIANTS["none"],
    "aa": _torch_monitors.VARIANTS["aa"],
    "spike": Variant("loss_spike every step", lambda m, o, rec: TimedTripwire(m, o, SPIKE, rec)),
    "spike_loss": Variant("loss_spike, loss only", lambda m, o, rec: TimedTripwire(m, o, LOSS_ONLY, rec)),
    "spike_skip": Variant("loss_spike + skip_step", lambda m, o, rec: TimedTripwire(m, o, SKIP, rec)),
    "spike_rollback": Variant("loss_spike + rollback", lambda m, o, rec: TimedTripwire(m, o, ROLLBACK, rec)),
    "norm": Variant("gradient norm alone", lambda m, o, rec: TimedNorm(m)),
}
LABELS = {name: v.label for name, v in VARIANTS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, COLUMNS)
    args = parser.parse_args(argv)
    reps, steps, warmup = settings(parser, args)
    torch.set_num_threads(args.threads)
    scale = SCALES["quick" if args.quick else "cpu"]
    print("# loss_spike + skip_step overhead in a plain PyTorch loop (CPU)\n")
    print(machine(args.threads, f"torch {torch.__version__}"))
    print(run_line(reps, steps, warmup, args), flush=True)
    results, started = [], time.monotonic()
    for name in args.workloads:
        record_dir = None if args.no_record else tempfile.mkdtemp(prefix="tripwire-bench-")

        def fit(variant: str, timed: bool, wl: Workload = scale[name], rec: str | None = record_dir) -> FitResult:
            return train(wl, variant, steps if timed else args.block, warmup, args.block, rec, args.clock,
                         VARIANTS)

        try:
            results.append(interleave(name, ["none", *args.columns], reps, fit, warm_round=not args.quick))
        finally:
            if record_dir:
                shutil.rmtree(record_dir, ignore_errors=True)
        print(f"  {name} done ({time.monotonic() - started:.0f} s, load {load()})", file=sys.stderr, flush=True)
    print(ratio_table(results, args.columns, LABELS))
    print("\nCells: median over reps of step time / step time of the neighbouring no-monitor run; ± half the IQR.\n")
    hooked = [c for c in args.columns if c != "aa"]
    print("| workload | " + " | ".join(f"in {'the norm' if c == 'norm' else 'tripwire'}, {LABELS[c]}"
                                      for c in hooked) + " |")
    print("|---|" + "---:|" * len(hooked))
    for r in results:
        cells = [f"{r.hook_ms[c]:.3f} ms ({100 * r.hook_ms[c] / r.baseline_ms:.2f}%)" for c in hooked]
        print(f"| {r.workload} | " + " | ".join(cells) + " |")
    print("\nIn-hook cells: median over reps of the ms per step spent inside tripwire's calls (share of the "
          "baseline step).")
    fired = {f"{r.workload}/{v}": f for r in results for v, f in r.findings.items() if f}
    if fired:
        print("\nFindings on these healthy workloads: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in fired.items()))
    print(f"\nload average at end {load()}; wall {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
