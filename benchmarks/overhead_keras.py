"""Step-time overhead of `KerasTripwire` in Keras 3 ``model.fit`` (TensorFlow backend by default).

For each workload, one model trains in the same process, fit after fit, with no callback, with
``KerasTripwire`` and the default config (every default rule, ``interval=10``), and with no
callback again ("A/A": its ratio to the first shows the noise and should be 1.000). One model
for all three: two identical models can differ by several percent in step time (where their
buffers landed), which would read as overhead; tripwire leaves the model as it found it. A
timer callback, first in the list, stamps every batch start, so a step's time holds everything
of that step: the compiled train step, tripwire's sampled-step work inside it, and every
callback's host work (tripwire's host read and rules). A fit's step time is
the mean over its steps after ``--warmup``; the fits are interleaved ``--repeats`` times in a
shuffled order (machine load drifts) and the table shows median step times and the median of the
per-repeat ratios, of wall time and of process CPU time (all threads; steadier than wall time on
a shared machine).

The second table is measured inside the tripwire runs alone, so machine load blurs it far less:
how much longer (median, CPU time) a sampled step (statistics in the step, then the host read
and the rules) takes than the steps where tripwire does nothing, spread over the ``interval``
steps, in ms per step and as a share of a quiet step. It is a lower bound: tripwire's per-step
Python (counting steps, choosing the train function) is in the quiet steps too.

Usage:
    python benchmarks/overhead_keras.py                 # MLP and CNN on CPU, TF backend
    python benchmarks/overhead_keras.py --threads 1     # steadier on a busy machine
    python benchmarks/overhead_keras.py --jit           # with jit_compile=True (XLA)
    python benchmarks/overhead_keras.py --record        # also write the run record (default log_dir)
    KERAS_BACKEND=torch python benchmarks/overhead_keras.py --steps 120 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import random
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from tripwire import KerasTripwire
from tripwire.kit.data import linear_classes
from tripwire.kit.keras import mlp

INTERVAL = 10  # the default config's


class StepTimer(keras.callbacks.Callback):
    """Wall and process-CPU timestamps at every batch start (and at the end of training)."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup = warmup
        self.stamps: list[tuple[float, float]] = []

    def on_train_begin(self, logs=None) -> None:
        self.stamps = []

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))

    def on_train_end(self, logs=None) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))

    def steps(self, clock: int) -> np.ndarray:
        """Duration of every step after the warm-up (index i: optimizer step i + 1)."""
        t = np.array([s[clock] for s in self.stamps])
        return np.diff(t)[self.warmup:]

    def mean(self, clock: int) -> float:
        return float(self.steps(clock).mean())

    def phases(self, clock: int) -> tuple[float, float]:
        """``(extra, quiet)``: the median time of the steps where tripwire does nothing (``quiet``),
        and what its sampled steps add, per step."""
        durations = self.steps(clock)
        phase = (np.arange(len(durations)) + self.warmup + 1) % INTERVAL
        quiet = float(np.median(durations[phase != 0]))
        return (float(np.median(durations[phase == 0])) - quiet) / INTERVAL, quiet


def cnn() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Conv2D(64, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                             keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])


WORKLOADS = {"mlp": (lambda: mlp(784, 10, (512, 256), head=None), (784,), 128), "cnn": (cnn, (28, 28, 1), 64)}


def measure(name: str, steps: int, repeats: int, warmup: int, jit: bool, log_dir: str | None) -> dict[str, float]:
    build, shape, batch = WORKLOADS[name]
    x, y = linear_classes(steps * batch, shape, 10, map_seed=None)  # learnable labels
    keras.utils.set_random_seed(0)
    model = build()
    # "auto": TensorFlow on CPU and torch run without XLA / torch.compile, JAX jits
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True if jit else "auto")
    variants = ("none", "tripwire", "control")
    timer = StepTimer(warmup)
    mean: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    inside: list[tuple[float, float]] = []
    for r in range(repeats):
        order = list(variants)
        random.Random(r).shuffle(order)
        for variant in order:
            extra = [KerasTripwire(log_dir=log_dir or False)] if variant == "tripwire" else []
            with contextlib.redirect_stdout(io.StringIO()):  # the end-of-run summary of each fit
                model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer, *extra])
            mean[variant].append((timer.mean(0), timer.mean(1)))
            if variant == "tripwire":
                inside.append(timer.phases(1))

    def ratio(variant: str, clock: int) -> float:
        return statistics.median(t[clock] / n[clock] for t, n in zip(mean[variant], mean["none"]))

    cost = statistics.median(c for c, _ in inside)
    return {"none_ms": 1e3 * statistics.median(t for t, _ in mean["none"]),
            "tripwire_ms": 1e3 * statistics.median(t for t, _ in mean["tripwire"]),
            "ratio": ratio("tripwire", 0), "cpu_ratio": ratio("tripwire", 1),
            "control": ratio("control", 0), "control_cpu": ratio("control", 1),
            "inside_ms": 1e3 * cost, "inside_share": cost / statistics.median(q for _, q in inside)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per fit")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved fits per variant")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out at the start of each fit")
    parser.add_argument("--jit", action="store_true", help="compile with jit_compile=True (default: Keras' \"auto\")")
    parser.add_argument("--record", action="store_true", help="also write the run record (default config's log_dir)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: its default)")
    args = parser.parse_args()
    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    logging.getLogger("tripwire").setLevel(logging.ERROR)  # findings are not the point here
    print(f"backend={keras.backend.backend()} jit_compile={True if args.jit else 'auto'} steps={args.steps} "
          f"repeats={args.repeats} "
          f"record={args.record} threads={args.threads or 'default'} load={os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads:
            rows.append((name, measure(name, args.steps, args.repeats, args.warmup, args.jit,
                                       tmp if args.record else None)))
    print(f"\n{'workload':<9}{'no callback ms/step':>20}{'KerasTripwire ms/step':>23}{'ratio':>7}{'CPU ratio':>11}"
          f"{'A/A':>7}{'A/A CPU':>9}")
    for name, r in rows:
        print(f"{name:<9}{r['none_ms']:>20.3f}{r['tripwire_ms']:>23.3f}{r['ratio']:>7.3f}{r['cpu_ratio']:>11.3f}"
              f"{r['control']:>7.3f}{r['control_cpu']:>9.3f}")
    print(f"\n{'workload':<9}{'inside the run: CPU ms/step':>29}{'share of a quiet step':>24}")
    for name, r in rows:
        print(f"{name:<9}{r['inside_ms']:>29.3f}{r['inside_share']:>23.1%}")
    print(f"load at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
