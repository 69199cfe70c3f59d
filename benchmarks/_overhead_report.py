"""Command line and report of the torch overhead benchmarks (Lightning and the plain loop).

- :func:`add_arguments` / :func:`settings`: the options both scripts take (repetitions, steps,
  warm-up, block, threads, workloads, columns, run record, clock) and their defaults.
- :func:`machine`, :func:`load`: what the header says about the machine.
- :func:`ratio_table`: the Markdown table of ratios; a column that could not run (a peer that is
  not installed) shows its reason in every cell.
- :func:`verdicts`: the DESIGN.md section 6 targets, HOLDS / FAILS / UNDECIDED.

Example:
    >>> from _timing import Overhead
    >>> r = Overhead("mlp", 5.0, {"none": 1.0, "aa": 1.01}, {"none": [1.0], "aa": [1.0, 1.02]}, {})
    >>> print(ratio_table([r], ["aa", "wandb"], {"aa": "A/A", "wandb": "wandb"}, {"wandb": "not installed"}))
    | workload | baseline ms/step | A/A | wandb |
    |---|---:|---:|---:|
    | mlp | 5.00 | 1.010x ±0.005 | not installed |
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from _timing import Overhead, fmt_ratio, spread

WORKLOADS = ["mlp", "cnn", "transformer"]
#: on request: the parameter-bound MLP of the overhead issue (784-1024-1024-10, batch 64)
MORE_WORKLOADS = ["mlp_wide"]
DEFAULT_LIMIT = 1.02
EVERY_VS_FLOOR_LIMIT = 1.5


def load() -> str:
    """The machine's load averages (1, 5, 15 min), or ``n/a``."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine(threads: int, versions: str) -> str:
    """One line: ``versions`` (the frameworks'), Python, the processor, its cores and torch's threads."""
    return (f"{versions}, python {platform.python_version()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores; torch threads {threads}")


def run_line(reps: int, steps: int, warmup: int, args: argparse.Namespace) -> str:
    """One line: repetitions, steps, blocks, clock, whether the run record is on, and the load now."""
    return (f"{reps} interleaved reps x {steps} timed steps (+{warmup} warm-up), blocks of "
            f"{args.block}; {args.clock} clock; run record {'off' if args.no_record else 'on'}; load average at "
            f"start {load()}\n")


def add_arguments(parser: argparse.ArgumentParser, columns: Sequence[str]) -> None:
    """The options of an overhead script whose table can show ``columns``."""
    parser.add_argument("--quick", action="store_true", help="tiny models, 20 steps, 2 reps (smoke test)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 5; quick 2)")
    parser.add_argument("--steps", type=int, help="timed steps per run, a multiple of --block (default 200; quick 20)")
    parser.add_argument("--warmup", type=int, help="untimed steps at the start of every run (default 20; quick 2)")
    parser.add_argument("--block", type=int, default=10, help="steps per timing block (default 10, the default "
                        "interval: each block holds one sampled step)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--workloads", nargs="+", default=WORKLOADS, choices=WORKLOADS + MORE_WORKLOADS)
    parser.add_argument("--columns", nargs="+", default=list(columns), choices=list(columns))
    parser.add_argument("--no-record", action="store_true", help="tripwire without its SQLite run record")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall: time.perf_counter "
                        "(default); cpu: the process's CPU time, steadier on a machine shared with other jobs")


class Settings(NamedTuple):
    """Repetitions, timed steps and warm-up steps per run, after the ``--quick`` defaults."""

    reps: int
    steps: int
    warmup: int


def settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """The run's sizes from the parsed ``args`` (``--quick`` changes the defaults); errors go to ``parser``."""
    s = Settings(args.reps or (2 if args.quick else 5), args.steps or (20 if args.quick else 200),
                 args.warmup if args.warmup is not None else (2 if args.quick else 20))
    if s.steps % args.block or s.steps < args.block:
        parser.error(f"--steps ({s.steps}) must be a positive multiple of --block ({args.block})")
    return s


def ratio_table(results: list[Overhead], columns: Sequence[str], labels: Mapping[str, str],
                unavailable: Mapping[str, str] | None = None) -> str:
    """One row per workload: the baseline ms/step, then per column the median ratio ± half the IQR,
    or the column's reason from ``unavailable``."""
    unavailable = unavailable or {}
    head = ["workload", "baseline ms/step", *(labels[c] for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in results:
        cells = [unavailable[c] if c in unavailable else f"{fmt_ratio(r.ratio[c])} ±{spread(r.per_rep[c]):.3f}"
                 for c in columns]
        lines.append("| " + " | ".join([r.workload, f"{r.baseline_ms:.2f}", *cells]) + " |")
    return "\n".join(lines)


def verdicts(results: list[Overhead], columns: Sequence[str]) -> list[str]:
    """One line per target: the numbers per workload and whether the target holds everywhere."""
    lines = []
    if "default" in columns:
        parts = [f"{r.workload} {fmt_ratio(r.ratio['default'])}" for r in results]
        ok = all(r.ratio["default"] <= DEFAULT_LIMIT for r in results)
        lines.append(f"- default config <= {DEFAULT_LIMIT:.2f}x: {', '.join(parts)} -> {'HOLDS' if ok else 'FAILS'}")
    if "every" in columns and "floor" in columns:
        lines.append(_every_vs_floor(results))
    if "aa" in columns:
        parts = [f"{r.workload} {fmt_ratio(r.ratio['aa'])} ±{spread(r.per_rep['aa']):.3f}" for r in results]
        lines.append(f"- noise (A/A, should be 1.000x): {', '.join(parts)}")
    return lines


def _every_vs_floor(results: list[Overhead]) -> str:
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
    hooks = f" (time in hooks, every rule / floor: {', '.join(in_hooks)})" if in_hooks else ""
    return (f"- every rule every step cost <= {EVERY_VS_FLOOR_LIMIT}x the floor's cost: {'; '.join(parts)} -> "
            f"{verdict}{hooks}")
