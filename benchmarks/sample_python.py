"""Host-side Python per sample: unpacking a flush and ``Monitor.process``, on samples of real fits.

Each workload of ``_lightning_workloads.SCALES["cpu"]`` (MLP, CNN, transformer) is trained once with
``LightningTripwire`` under the default rules at ``interval=10``, without a run record; every
:class:`~tripwire.callbacks.torch.collector.Flush` the collector hands out and every
:class:`~tripwire.stats.Sample` given to ``Monitor.process`` is kept. Then, ``--reps`` times each,
interleaved:

- ``read``: ``Packed.read`` of every captured flush (the host values unpacked into series);
- ``sample``: ``Flush.sample`` (the same plus the guard and the ``Sample``);
- ``process``: a fresh default-config ``Monitor`` (torch, ``interval=10``, no record) processes the
  captured samples in order;
- ``process+record``: the same with the run record on (SQLite in a temporary directory; the
  writer thread builds the rows and is closed, untimed, after each replay).

Printed: a Markdown table of the median over repetitions of the ms per sample of each part, and
before it the ten functions with the most own time under cProfile in one replay of ``process``.
Nothing is trained while timing, so the numbers hold only tripwire's Python; the machine's load
average is printed at the start and the end.

Usage:
    python benchmarks/sample_python.py                    # 300 steps per workload, 30 replays (~1 min)
    python benchmarks/sample_python.py --workloads mlp --reps 50
    python benchmarks/sample_python.py --quick            # seconds; numbers meaningless
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from _lightning_workloads import SCALES, Classifier, Workload, quiet, trainer
from tripwire import LightningTripwire
from tripwire.monitor import Monitor
from tripwire.stats import Sample

PARTS = ("read", "sample", "process", "process+record")


def capture(workload: Workload, steps: int, interval: int) -> tuple[list[Any], list[Sample]]:
    """Fit ``workload`` for ``steps`` steps under the default rules; the flushes and the samples."""
    torch.manual_seed(0)
    tw = LightningTripwire(None, interval=interval, log_dir=False)
    flushes: list[Any] = []
    samples: list[Sample] = []
    process, build = tw.monitor.process, tw.driver.build

    def kept_sample(sample: Sample) -> Any:
        samples.append(copy.deepcopy(sample))  # the driver may add to a sample after processing it
        return process(sample)

    def kept_flushes(fn: Callable[..., Any]) -> Callable[..., Any]:
        def flush(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            if out is not None and out.packed is not None:
                flushes.append(out)
            return out
        return flush

    def build_and_keep(module: Any) -> None:
        build(module)
        collector = tw.driver.collector
        collector.flush = kept_flushes(collector.flush)
        collector.init_flush = kept_flushes(collector.init_flush)

    tw.monitor.process, tw.driver.build = kept_sample, build_and_keep
    with quiet():
        trainer(steps, [tw]).fit(Classifier(workload.net(), lr=1e-3, optimizer="adam"), workload.loader(steps))
    return flushes, samples


def replay(samples: list[Sample], record_dir: str | None, interval: int,
           profiler: cProfile.Profile | None = None) -> float:
    """Seconds to process ``samples`` in a fresh default-config Monitor (built, opened and closed
    untimed); ``profiler``: profile the processing only."""
    monitor = Monitor(None, framework="torch", interval=interval, log_dir=record_dir or False,
                      run_name=None if record_dir is None else f"r{time.perf_counter_ns()}")
    monitor.open()
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    for sample in samples:
        monitor.process(sample)
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
    with quiet():
        monitor.close(print_summary=False)
    return seconds


def time_parts(flushes: list[Any], samples: list[Sample], reps: int, interval: int) -> dict[str, float]:
    """Median ms per sample of each part over ``reps`` interleaved repetitions."""
    record_root = tempfile.mkdtemp(prefix="tripwire-sample-python-")
    runs: dict[str, Callable[[], float]] = {
        "read": lambda: _timed(lambda: [f.packed.read() for f in flushes]),
        "sample": lambda: _timed(lambda: [f.sample() for f in flushes]),
        "process": lambda: replay(samples, None, interval),
        "process+record": lambda: replay(samples, record_root, interval),
    }
    per: dict[str, list[float]] = {part: [] for part in PARTS}
    try:
        with quiet():
            for fn in runs.values():  # warm-up: imports, caches
                fn()
            for rep in range(reps):
                order = PARTS[rep % len(PARTS):] + PARTS[:rep % len(PARTS)]
                for part in order:
                    n = len(flushes) if part in ("read", "sample") else len(samples)
                    per[part].append(1000 * runs[part]() / max(n, 1))
    finally:
        shutil.rmtree(record_root, ignore_errors=True)
    return {part: statistics.median(values) for part, values in per.items()}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile(samples: list[Sample], interval: int, top: int = 10) -> str:
    """The ``top`` functions by own time in one replay of ``process``, as cProfile prints them."""
    profiler = cProfile.Profile()
    with quiet():
        replay(samples, None, interval, profiler)
    out = tempfile.SpooledTemporaryFile(mode="w+")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    out.seek(0)
    lines = out.read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["mlp", "cnn", "transformer"])
    parser.add_argument("--steps", type=int, default=300, help="training steps captured per workload")
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--reps", type=int, default=30, help="interleaved replays of each part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-profile", action="store_true", help="leave out the cProfile listing")
    parser.add_argument("--quick", action="store_true", help="tiny models, 40 steps, 3 replays")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scale = SCALES["quick" if args.quick else "cpu"]
    steps, reps = (40, 3) if args.quick else (args.steps, args.reps)
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__}, "
          f"{args.threads} thread(s); {steps} steps, interval {args.interval}, {reps} replays")
    rows = []
    for name in args.workloads:
        flushes, samples = capture(scale[name], steps, args.interval)
        values = sum(len(series) for s in samples for series in s.stats.values())
        times = time_parts(flushes, samples, reps, args.interval)
        rows.append((name, len(samples), values / max(len(samples), 1), times))
        if not args.no_profile:
            print(f"\n{name}: cProfile of one replay of process ({len(samples)} samples), by own time")
            print(profile(samples, args.interval))
    print("\nms per sample, median over replays\n")
    print("| workload | samples | values/sample | " + " | ".join(f"{p} ms" for p in PARTS) + " |")
    print("|---" * (3 + len(PARTS)) + "|")
    for name, n, values, times in rows:
        print(f"| {name} | {n} | {values:.0f} | " + " | ".join(f"{times[p]:.3f}" for p in PARTS) + " |")
    print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
