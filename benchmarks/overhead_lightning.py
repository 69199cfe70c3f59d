"""Step-time overhead of `LightningTripwire` and its peers under Lightning on CPU.

MLP, CNN and a small transformer train in one process with, beside the model, one of:
nothing (the baseline, run twice: the A/A column shows the noise), tripwire with the default
config (its 1% overhead budget chooses the interval), the same rules pinned at ``interval: 10`` and
at ``interval: 1000`` (almost no samples: what every step pays), tripwire with every torch rule type
enabled and sampled every step, Lightning's
``grad_norm`` logged every step, a hand-written per-tensor ``.item()`` monitor, and the floor
(one fused norm pass over parameters and gradients per step). Every repetition fits each
variant once right next to a no-callback fit (A/B, then B/A in the next repetition; the
variants in a rotating order), so that drifts in the machine's load cancel out; a cell is the
median over repetitions of (variant step time / step time of its neighbouring baseline). A
fit's step time is the median over blocks of ``--block`` steps after ``--warmup`` steps
(timestamps at batch starts: the tripwire hooks, the sampled steps and their host reads are
inside the blocks; Trainer setup and teardown are not).

Targets (DESIGN.md section 6): default config <= 1.02x; every rule every step costs (ratio - 1)
at most 1.5x what the floor costs.

Usage:
    python benchmarks/overhead_lightning.py                  # 5 reps x 200 steps, 1 thread
    python benchmarks/overhead_lightning.py --reps 7 --threads 2 --workloads mlp cnn
    python benchmarks/overhead_lightning.py --quick          # seconds: the smoke test's setting
"""

from __future__ import annotations

import argparse
import sys
import time

import lightning
import torch

from _lightning_monitors import VARIANTS
from _lightning_timing import interleaved
from _lightning_workloads import SCALES
from _overhead_report import add_arguments, load, machine, ratio_table, run_line, settings, verdicts
from _timing import Overhead

COLUMNS = ["aa", "default", "pinned", "sparse", "every", "grad_norm", "item", "floor"]
LABELS = {name: v.label for name, v in VARIANTS.items()}


def hook_table(results: list[Overhead], columns: list[str]) -> str:
    """Time inside each monitor's own hooks, ms/step and % of the baseline step."""
    shown = [c for c in columns if c != "aa"]
    head = ["workload", *(VARIANTS[c].label for c in shown)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(shown)) + "|"]
    for r in results:
        cells = [f"{r.hook_ms[c]:.3f} ms ({r.hook_ms[c] / r.baseline_ms:.1%})" for c in shown]
        lines.append("| " + " | ".join([r.workload, *cells]) + " |")
    return "\n".join(lines)


def kept_table(results: list[Overhead], columns: list[str], models: dict[str, int]) -> str:
    """Per tripwire variant: the sampling interval each rep ended at, and the memory kept between
    samples (weight snapshot and accumulators) against the model's parameters."""
    shown = [c for c in columns if any(c in r.intervals for r in results)]
    head = ["workload", "parameters", *(f"{VARIANTS[c].label}: interval, kept" for c in shown)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(shown) + 1)) + "|"]
    for r in results:
        cells = [f"{'/'.join(map(str, r.intervals.get(c, [])))}, {r.kept_bytes.get(c, 0) / 1e6:.3f} MB" for c in shown]
        lines.append("| " + " | ".join([r.workload, f"{models[r.workload] / 1e6:.3f} MB", *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, COLUMNS)
    args = parser.parse_args(argv)
    reps, steps, warmup = settings(parser, args)
    torch.set_num_threads(args.threads)
    scale = SCALES["quick" if args.quick else "cpu"]

    print("# tripwire overhead under Lightning (CPU)\n")
    print(machine(args.threads, f"torch {torch.__version__}, lightning {lightning.__version__}"))
    print(run_line(reps, steps, warmup, args), flush=True)
    results = []
    started = time.monotonic()
    for name in args.workloads:
        results.append(interleaved(scale[name], ["none", *args.columns], reps, steps, warmup, args.block,
                                   record=not args.no_record, warm_round=not args.quick, clock=args.clock))
        print(f"  {name} done ({time.monotonic() - started:.0f} s, load {load()})", file=sys.stderr, flush=True)
    print(ratio_table(results, args.columns, LABELS))
    print("\nCells: median over reps of step time / step time of the neighbouring no-callback fit; ± half the IQR.\n")
    print("Time inside each monitor's own hooks per step (median over reps; % of the baseline step). A lower bound "
          "of its cost, much less blurred by machine load than the ratios above:\n")
    print(hook_table(results, args.columns) + "\n")
    models = {n: sum(p.numel() * p.element_size() for p in scale[n].net().parameters()) for n in args.workloads}
    print("Sampling interval at the end of each rep, and memory tripwire kept between samples (float32 "
          "parameters for scale):\n")
    print(kept_table(results, args.columns, models) + "\n")
    print("Targets:")
    print("\n".join(verdicts(results, args.columns)))
    fired = {f"{r.workload}/{v}": f for r in results for v, f in r.findings.items() if f}
    if fired:
        print("\nFindings raised on these healthy workloads (information, not a target): "
              + "; ".join(f"{k}: {', '.join(v)}" for k, v in fired.items()))
    print(f"\nload average at end {load()}; wall {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
