"""Long runs: run-record size, write cost on the training thread, report time and size, and
findings recorded vs alerts delivered.

Two parts, both with the default rule set:

- ``train``: a real training in a plain PyTorch loop (``tripwire.torch.Tripwire``): a 15-layer
  ReLU MLP (16 -> 13 x 32 -> 4), Adam 1e-3, Gaussian blobs, ``--train-steps`` steps (6,000) at
  ``interval: 1``, the run of the issue that asked for a compact record (135 values a sample).
- ``stream``: a synthesized stream, not a training: ``--stream-samples`` samples (50,000; at the
  default interval of 10 that is 500,000 steps) of a deeper model (``--layers`` 24 linear layers:
  48 parameter tensors, 24 ReLUs; 229 values a sample, about 11 M values in all) fed to
  ``tripwire.Monitor.process`` exactly as a callback feeds it (rules, record, alerts). The values
  are drawn to look like a healthy run, with a planted flapping fault: between samples 10,000 and
  20,000 the gradient norm jumps 30x and the loss 3x on every 37th sample (``exploding_gradient``
  fires 270 times, each far enough from the last to re-arm: the rate limit is what holds them).
  Hours of training are not needed to measure what the record and the report do with that many
  values.

For each: the record's size and bytes per stored value (after a WAL checkpoint), the time
``RunRecord.add_sample`` takes on the training thread per sample (it only queues the sample, but
the writer thread holds the interpreter now and then, and that shows up here), the whole cost of
writing a sample (``write_us``, ``write_cpu_us``: the run's samples written again into a new record
with nothing else running), findings and repeats recorded, alerts delivered (the log channel;
rate limit at its default), and ``tripwire report``'s time and page size.

    python benchmarks/long_run.py                       # both parts, ~5 min on 2 shared cores
    python benchmarks/long_run.py --part train --train-steps 6000
    python benchmarks/long_run.py --quick               # seconds; numbers meaningless

It also runs against an older tripwire on ``PYTHONPATH`` (before the compact record): what that
tripwire lacks (repeats, the rate limit) is reported as ``-``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import tripwire
from tripwire import Monitor, Run
from tripwire.record import RunRecord
from tripwire.report import write_report
from tripwire.stats import Sample


class AddSampleTimer:
    """Wraps ``RunRecord.add_sample`` to time what the training thread spends in it."""

    def __init__(self) -> None:
        self.calls, self.seconds = 0, 0.0
        self._original = RunRecord.add_sample

    def __enter__(self) -> AddSampleTimer:
        original, timer = self._original, self

        def timed(record: RunRecord, sample: Sample) -> None:
            start = time.perf_counter()
            original(record, sample)
            timer.seconds += time.perf_counter() - start
            timer.calls += 1

        RunRecord.add_sample = timed
        return self

    def __exit__(self, *exc: object) -> None:
        RunRecord.add_sample = self._original


class AlertCounter(logging.Handler):
    """Counts the findings the log channel delivers (and how many of them were summaries)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.alerts = self.summaries = 0

    def emit(self, record: logging.LogRecord) -> None:
        finding = getattr(record, "tripwire_finding", None)
        if finding is not None:
            self.alerts += 1
            self.summaries += "held_back" in (finding.evidence or {})


def stored_values(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "samples" in tables:
            return int(conn.execute("SELECT COALESCE(SUM(LENGTH(vals)), 0) / 8 FROM samples").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM series").fetchone()[0])


def record_size(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def measure(monitor: Monitor, timer: AddSampleTimer, counter: AlertCounter, label: str, run_s: float) -> dict:
    path = Path(monitor.record_path)
    size, values = record_size(path), stored_values(path)
    start = time.perf_counter()
    report = write_report(path.parent)
    report_s = time.perf_counter() - start
    run = Run(path.parent)
    repeats = len(run.repeats) if hasattr(run, "repeats") else None
    write_us, write_cpu_us = replay_cost(run, path.parent.parent)
    return {"part": label, "tripwire": tripwire.__version__, "schema": run.meta.get("schema_version"),
            "samples": timer.calls, "values": values, "record_mb": size / 1e6, "bytes_per_value": size / max(values, 1),
            "add_sample_us": 1e6 * timer.seconds / max(timer.calls, 1), "write_us": write_us,
            "write_cpu_us": write_cpu_us, "run_s": run_s,
            "findings": len(run.findings), "repeats": repeats, "alerts": counter.alerts, "summaries": counter.summaries,
            "report_s": report_s, "report_mb": report.stat().st_size / 1e6}


def replay_cost(run: Run, log_dir: Path) -> tuple[float, float]:
    """Wall and CPU time per sample to write the run's samples again into a new record (queue,
    encode, insert, both threads), with nothing else running: the record's whole cost of writing,
    which in training competes with the training thread for the interpreter."""
    samples = list(run.samples())
    rec = RunRecord.create(log_dir, None, run_name=f"{run.name}-replay")
    wall, cpu = time.perf_counter(), time.process_time()
    for sample in samples:
        rec.add_sample(sample)
    rec.flush(timeout_s=3600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rec.close()
    return 1e6 * wall / len(samples), 1e6 * cpu / len(samples)


def part_train(steps: int, log_dir: str) -> dict:
    """A real 15-layer MLP training at interval 1."""
    import torch

    from tripwire.kit.torch import blobs, mlp
    from tripwire.torch import Tripwire

    torch.manual_seed(0)
    x, y = blobs(2048, features=16, classes=4)
    model = mlp(features=16, hidden=[32] * 13, classes=4)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    counter = AlertCounter()
    logging.getLogger("tripwire").addHandler(counter)
    start = time.perf_counter()
    with AddSampleTimer() as timer:
        with Tripwire(model, optimizer, {"interval": 1, "log_dir": log_dir}, run_name="train") as tw:
            tw.monitor.print_summary = False
            for _ in range(steps):
                i = torch.randint(0, len(x), (32,))
                loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                if tw.step(loss, inputs=x[i], labels=y[i]):
                    break
    run_s = time.perf_counter() - start
    logging.getLogger("tripwire").removeHandler(counter)
    return measure(tw.monitor, timer, counter, f"train: 15-layer MLP, {steps} steps, interval 1", run_s)


def synthetic_samples(n: int, layers: int, interval: int):
    """Samples shaped like the default rule set's statistics of a ``layers``-deep ReLU MLP."""
    rng = random.Random(0)
    params = [f"net.{2 * i}.{kind}" for i in range(layers) for kind in ("weight", "bias")]
    acts = [f"net.{2 * i + 1}" for i in range(layers - 1)]
    level = {p: rng.uniform(0.05, 0.5) for p in params}
    for k in range(n):
        loss = 1.5 * math.exp(-k / 300) + 0.1 + rng.gauss(0, 0.01)
        spike = 10_000 <= k < 20_000 and k % 37 == 0
        scale = 30.0 if spike else 1.0
        grads = {p: level[p] * scale * math.exp(rng.gauss(0, 0.1)) for p in params}
        yield Sample(step=k * interval, epoch=k * interval // 1000, stats={
            "loss": {None: loss * (3.0 if spike else 1.0)}, "loss_nonfinite": {None: 0.0},
            "grad_global_norm": {None: math.sqrt(sum(g * g for g in grads.values()))},
            "grad_nonfinite": {None: 0.0}, "weight_nonfinite": {None: 0.0}, "lr": {None: 1e-3},
            "label_count": {str(c): 8.0 for c in range(4)},
            "grad_norm": grads,
            "grad_abs_mean": {p: g / 30 for p, g in grads.items()},
            "update_ratio": {p: 1e-3 * math.exp(rng.gauss(0, 0.2)) for p in params},
            "weight_unchanged[atol=1e-08,rtol=1e-05]": {p: 0.0 for p in params},
            "act_dead_frac[inactive_below=0.01]": {a: min(1.0, max(0.0, rng.gauss(0.15, 0.03))) for a in acts},
        })


def part_stream(samples: int, layers: int, log_dir: str) -> dict:
    """A synthesized stream through the monitor, at the default interval."""
    counter = AlertCounter()
    logging.getLogger("tripwire").addHandler(counter)
    monitor = Monitor(None, framework="torch", log_dir=log_dir, run_name="stream")
    monitor.print_summary = False
    start = time.perf_counter()
    with AddSampleTimer() as timer:
        for sample in synthetic_samples(samples, layers, monitor.interval):
            monitor.process(sample)
        monitor.close()
    run_s = time.perf_counter() - start
    logging.getLogger("tripwire").removeHandler(counter)
    label = f"stream: {layers}-layer MLP, {samples * monitor.interval} steps, interval {monitor.interval}"
    return measure(monitor, timer, counter, label, run_s)


def show(rows: list[dict]) -> None:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        return f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(cell(row[k]) for k in keys) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("train", "stream", "both"), default="both")
    parser.add_argument("--train-steps", type=int, default=6000)
    parser.add_argument("--stream-samples", type=int, default=50_000)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--log-dir", default=None, help="where the records go (default: a temporary directory)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_steps, args.stream_samples, args.layers = 50, 300, 4
    logging.getLogger("tripwire").setLevel(logging.INFO)
    logging.getLogger("tripwire").propagate = False  # counted, not printed
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="tripwire-long-run-")
    rows = []
    if args.part in ("train", "both"):
        rows.append(part_train(args.train_steps, log_dir))
    if args.part in ("stream", "both"):
        rows.append(part_stream(args.stream_samples, args.layers, log_dir))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, records in {log_dir}")
    show(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
