"""Step-time overhead of `tripwire.torch.Tripwire` and its peers in a plain PyTorch loop on CPU.

The three workloads of ``overhead_lightning.py`` (MLP, CNN, small transformer: the same models
and batches, from ``_lightning_workloads.py`` and :mod:`tripwire.kit`) train with Adam in a
plain loop, in one process, with beside the model one of: nothing (the baseline, run twice:
the A/A column shows the noise), tripwire with the default config, tripwire with every torch
rule type sampled every step,
``wandb.watch(model, log="all")`` with ``log_freq=1`` and ``log_freq=10`` plus
``wandb.log({"loss": loss})`` every step (offline), ``wandb.log`` alone, Lightning's ``grad_norm``
read with ``.item()`` every step, and the floor (one fused norm pass over parameters and gradients
per step); the columns are ``_torch_monitors.py``. The timing is ``overhead_lightning.py``'s
(``_timing.py``): every repetition runs each variant right next to a no-monitor run (A/B, then
B/A; variants in a rotating order), a cell is the median over repetitions of the ratio to that
neighbour; a run's step time is the median over blocks of ``--block`` steps after ``--warmup``
steps (a timestamp at every batch start, so the sampled steps and their host reads are inside
the blocks; making the monitor and closing it are not).

wandb is not a dependency of tripwire; without it its columns say "wandb not installed". To
measure them without touching the project's environment (wandb's own dependencies that the
environment lacks added the same way, ``--no-deps``, one by one; none of them is torch)::

    pip install --no-deps --target /tmp/wbextra wandb platformdirs xxhash opentelemetry-api
    PYTHONPATH=/tmp/wbextra python benchmarks/overhead_torch.py

Usage:
    python benchmarks/overhead_torch.py                  # 5 reps x 200 steps, 1 thread
    python benchmarks/overhead_torch.py --columns default watch10 --workloads mlp
    python benchmarks/overhead_torch.py --quick          # seconds: the smoke test's setting
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping

import torch
from torch import nn

from _lightning_workloads import SCALES, Workload, quiet
from _overhead_report import add_arguments, load, machine, ratio_table, run_line, settings, verdicts
from _timing import CLOCKS, FitResult, block_times, drain_background, interleave
from _torch_monitors import VARIANTS, Variant, unavailable

COLUMNS = ["aa", "default", "every", "watch1", "watch10", "wandb_log", "grad_norm", "floor"]
LABELS = {name: v.label for name, v in VARIANTS.items()}


def train(workload: Workload, variant: str, steps: int, warmup: int, block: int, record_dir: str | None,
          clock: str = "wall", variants: Mapping[str, Variant] = VARIANTS) -> FitResult:
    """Train a fresh model (same seed and batches for every variant) for ``warmup + steps`` steps in a
    plain loop, with ``variants[variant]``'s monitor beside it; a timestamp at every batch start. A
    monitor that adds up its own time (a ``seconds`` attribute, as ``overhead_spike.py``'s) reports
    it per timed step as the result's ``hook_ms``."""
    torch.manual_seed(0)
    model = workload.net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tick, marks = CLOCKS[clock], []
    with quiet():
        monitor = variants[variant].start(model, optimizer, record_dir)
        timed = hasattr(monitor, "seconds")
        try:
            for i, (x, y) in enumerate(workload.loader(warmup + steps)):
                if i == warmup and timed:
                    monitor.seconds = 0.0
                marks.append(tick())
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                monitor.before_step()
                optimizer.step()
                optimizer.zero_grad()
                monitor.after_step(loss, x, y)
            marks.append(tick())
        finally:
            findings = monitor.close()
    drain_background()
    hook_ms = 1e3 * monitor.seconds / steps if timed else 0.0
    return FitResult(block_times(marks, warmup, block), hook_ms=hook_ms, findings=findings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, COLUMNS)
    args = parser.parse_args(argv)
    reps, steps, warmup = settings(parser, args)
    os.environ.setdefault("WANDB_MODE", "offline")
    skipped = unavailable(args.columns)
    columns = [c for c in args.columns if c not in skipped]
    torch.set_num_threads(args.threads)
    scale = SCALES["quick" if args.quick else "cpu"]

    print("# tripwire overhead in a plain PyTorch loop (CPU)\n")
    versions = f"torch {torch.__version__}"
    if any(VARIANTS[c].needs_wandb for c in columns):
        import wandb

        versions += f", wandb {wandb.__version__}"
    print(machine(args.threads, versions))
    print(run_line(reps, steps, warmup, args), flush=True)
    results = []
    started = time.monotonic()
    for name in args.workloads:
        record_dir = None if args.no_record else tempfile.mkdtemp(prefix="tripwire-bench-")

        def fit(variant: str, timed: bool, wl: Workload = scale[name], rec: str | None = record_dir) -> FitResult:
            return train(wl, variant, steps if timed else args.block, warmup, args.block, rec, args.clock)

        try:
            results.append(interleave(name, ["none", *columns], reps, fit, warm_round=not args.quick))
        finally:
            if record_dir:
                shutil.rmtree(record_dir, ignore_errors=True)
        print(f"  {name} done ({time.monotonic() - started:.0f} s, load {load()})", file=sys.stderr, flush=True)
    print(ratio_table(results, args.columns, LABELS, skipped))
    print("\nCells: median over reps of step time / step time of the neighbouring no-monitor run; ± half the IQR.\n")
    print("Targets:")
    print("\n".join(verdicts(results, columns)))
    fired = {f"{r.workload}/{v}": f for r in results for v, f in r.findings.items() if f}
    if fired:
        print("\nFindings raised on these healthy workloads (information, not a target): "
              + "; ".join(f"{k}: {', '.join(v)}" for k, v in fired.items()))
    print(f"\nload average at end {load()}; wall {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
