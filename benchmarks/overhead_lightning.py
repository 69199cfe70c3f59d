"""Step-time overhead of `LightningTripwire` and its peers under Lightning on CPU.

MLP, CNN and a small transformer train in one process with, beside the model, one of:
nothing (the baseline, run twice: the A/A column shows the noise), tripwire with the default
config, tripwire with every torch rule type enabled and sampled every step, Lightning's
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
import os
import platform
import sys
import time

import lightning
import torch

from _lightning_monitors import VARIANTS
from _lightning_timing import Overhead, fmt_ratio, interleaved, spread
from _lightning_workloads import SCALES

COLUMNS = ["aa", "default", "every", "grad_norm", "item", "floor"]
DEFAULT_LIMIT = 1.02
EVERY_VS_FLOOR_LIMIT = 1.5


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def table(results: list[Overhead], columns: list[str]) -> str:
    head = ["workload", "baseline ms/step", *(VARIANTS[c].label for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in results:
        cells = [f"{fmt_ratio(r.ratio[c])} ±{spread(r.per_rep[c]):.3f}" for c in columns]
        lines.append("| " + " | ".join([r.workload, f"{r.baseline_ms:.2f}", *cells]) + " |")
    return "\n".join(lines)


def hook_table(results: list[Overhead], columns: list[str]) -> str:
    """Time inside each monitor's own hooks, ms/step and % of the baseline step."""
    shown = [c for c in columns if c != "aa"]
    head = ["workload", *(VARIANTS[c].label for c in shown)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(shown)) + "|"]
    for r in results:
        cells = [f"{r.hook_ms[c]:.3f} ms ({r.hook_ms[c] / r.baseline_ms:.1%})" for c in shown]
        lines.append("| " + " | ".join([r.workload, *cells]) + " |")
    return "\n".join(lines)


def verdicts(results: list[Overhead], columns: list[str]) -> list[str]:
    """One line per target: the numbers per workload and whether the target holds everywhere."""
    lines = []
    if "default" in columns:
        parts = [f"{r.workload} {fmt_ratio(r.ratio['default'])}" for r in results]
        ok = all(r.ratio["default"] <= DEFAULT_LIMIT for r in results)
        lines.append(f"- default config <= {DEFAULT_LIMIT:.2f}x: {', '.join(parts)} -> {'HOLDS' if ok else 'FAILS'}")
    if "every" in columns and "floor" in columns:
        parts, ok, decided = [], True, True
        for r in results:
            every, floor = r.cost("every"), r.cost("floor")
            if floor <= 0:
                parts.append(f"{r.workload} every +{every:.1%} vs floor {floor:+.1%} (floor cost below noise)")
                decided = False
                continue
            parts.append(f"{r.workload} every +{every:.1%} vs floor +{floor:.1%} = {every / floor:.2f}x")
            ok &= every <= EVERY_VS_FLOOR_LIMIT * floor
        in_hooks = [f"{r.workload} {r.hook_ms['every'] / r.hook_ms['floor']:.1f}x" for r in results
                    if r.hook_ms.get("floor", 0) > 0]
        verdict = ("HOLDS" if ok else "FAILS") if decided else ("FAILS" if not ok else "UNDECIDED")
        lines.append(f"- every rule every step cost <= {EVERY_VS_FLOOR_LIMIT}x the floor's cost: "
                     f"{'; '.join(parts)} -> {verdict} (time in hooks, every rule / floor: {', '.join(in_hooks)})")
    if "aa" in columns:
        parts = [f"{r.workload} {fmt_ratio(r.ratio['aa'])} ±{spread(r.per_rep['aa']):.3f}" for r in results]
        lines.append(f"- noise (A/A, should be 1.000x): {', '.join(parts)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, 20 steps, 2 reps (smoke test)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 5; quick 2)")
    parser.add_argument("--steps", type=int, help="timed steps per fit, a multiple of --block (default 200; quick 20)")
    parser.add_argument("--warmup", type=int, help="untimed steps at the start of every fit (default 20; quick 2)")
    parser.add_argument("--block", type=int, default=10, help="steps per timing block (default 10, the default "
                        "interval: each block holds one sampled step)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--workloads", nargs="+", default=["mlp", "cnn", "transformer"], choices=["mlp", "cnn",
                        "transformer"])
    parser.add_argument("--columns", nargs="+", default=COLUMNS, choices=COLUMNS)
    parser.add_argument("--no-record", action="store_true", help="tripwire without its SQLite run record")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall: time.perf_counter "
                        "(default); cpu: the process's CPU time, steadier on a machine shared with other jobs")
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.quick else 5)
    steps = args.steps or (20 if args.quick else 200)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 20)
    if steps % args.block or steps < args.block:
        parser.error(f"--steps ({steps}) must be a positive multiple of --block ({args.block})")
    torch.set_num_threads(args.threads)
    scale = SCALES["quick" if args.quick else "cpu"]

    print("# tripwire overhead under Lightning (CPU)\n")
    print(f"torch {torch.__version__}, lightning {lightning.__version__}, python {platform.python_version()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch threads {args.threads}")
    print(f"{reps} interleaved reps x {steps} timed steps (+{warmup} warm-up), blocks of {args.block}; "
          f"{args.clock} clock; run record {'off' if args.no_record else 'on'}; load average at start {load()}\n",
          flush=True)
    results = []
    started = time.monotonic()
    for name in args.workloads:
        results.append(interleaved(scale[name], ["none", *args.columns], reps, steps, warmup, args.block,
                                   record=not args.no_record, warm_round=not args.quick, clock=args.clock))
        print(f"  {name} done ({time.monotonic() - started:.0f} s, load {load()})", file=sys.stderr, flush=True)
    print(table(results, args.columns))
    print("\nCells: median over reps of step time / step time of the neighbouring no-callback fit; ± half the IQR.\n")
    print("Time inside each monitor's own hooks per step (median over reps; % of the baseline step). A lower bound "
          "of its cost, much less blurred by machine load than the ratios above:\n")
    print(hook_table(results, args.columns) + "\n")
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
