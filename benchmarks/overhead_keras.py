"""Step-time overhead of `KerasTripwire` in Keras 3 ``model.fit`` (TensorFlow backend by default).

For each workload, two identical models (same seed, same data) train in the same process:
one with no callback, one with ``KerasTripwire`` and the default config (every default rule,
``interval=10``). Every fit also carries a timer callback that records batch-end times; the
step time of a fit is the mean over its batches after ``--warmup`` (so tracing is excluded,
and the sampled steps and host reads of tripwire are included). Fits of the two variants are
interleaved ``--repeats`` times; the table shows median step times and the median of the
per-repeat ratios, of wall time and of process CPU time (all threads; steadier than wall time
on a shared machine). A third model without a callback ("A/A") measures the noise floor: its
ratio to the first should be 1.000. The order of the three fits is shuffled in every repeat.
``--record`` also writes the run record, as the default ``log_dir`` does.

Usage:
    python benchmarks/overhead_keras.py                 # MLP and CNN on CPU, TF backend
    python benchmarks/overhead_keras.py --jit           # with jit_compile=True (XLA)
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

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tripwire import KerasTripwire  # noqa: E402


class StepTimer(keras.callbacks.Callback):
    """Mean wall and process-CPU time per step of a fit, from batch ends after a warm-up."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup = warmup
        self.times: list[tuple[float, float]] = []

    def on_train_begin(self, logs=None) -> None:  # noqa: ANN001
        self.times = []

    def on_train_batch_end(self, batch, logs=None) -> None:  # noqa: ANN001
        self.times.append((time.perf_counter(), time.process_time()))

    def step_time(self) -> tuple[float, float]:
        t = self.times[self.warmup:]
        n = len(t) - 1
        return (t[-1][0] - t[0][0]) / n, (t[-1][1] - t[0][1]) / n


def mlp() -> keras.Model:
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(512, activation="relu"),
                             keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])


def cnn() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Conv2D(64, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                             keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])


WORKLOADS = {"mlp": (mlp, (784,), 128), "cnn": (cnn, (28, 28, 1), 64)}


def measure(name: str, steps: int, repeats: int, warmup: int, jit: bool, log_dir: str | None) -> dict[str, float]:
    build, shape, batch = WORKLOADS[name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * batch, *shape)).astype(np.float32)
    y = (x.reshape(len(x), -1) @ rng.normal(size=(int(np.prod(shape)), 10))).argmax(1)  # learnable labels
    variants = {}
    for variant in ("none", "tripwire", "control"):
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
        extra = [KerasTripwire(log_dir=log_dir or False)] if variant == "tripwire" else []
        variants[variant] = (model, extra)
    timer = StepTimer(warmup)
    wall: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(repeats):
        order = list(variants.items())
        random.Random(r).shuffle(order)  # no variant always runs first (machine load drifts)
        for variant, (model, extra) in order:
            with contextlib.redirect_stdout(io.StringIO()):  # the end-of-run summary of each fit
                model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer, *extra])
            w, c = timer.step_time()
            wall[variant].append(w)
            cpu[variant].append(c)

    def ratio(times: dict[str, list[float]], variant: str = "tripwire") -> float:
        return statistics.median(t / n for t, n in zip(times[variant], times["none"]))

    return {"none_ms": 1e3 * statistics.median(wall["none"]), "tripwire_ms": 1e3 * statistics.median(wall["tripwire"]),
            "ratio": ratio(wall), "cpu_ratio": ratio(cpu), "control": ratio(wall, "control"),
            "control_cpu": ratio(cpu, "control")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per fit")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved fits per variant")
    parser.add_argument("--warmup", type=int, default=20, help="batches left out at the start of each fit")
    parser.add_argument("--jit", action="store_true", help="compile with jit_compile=True")
    parser.add_argument("--record", action="store_true", help="also write the run record (default config's log_dir)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: its default)")
    args = parser.parse_args()
    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    logging.getLogger("tripwire").setLevel(logging.ERROR)  # random-label findings are not the point here
    print(f"backend={keras.backend.backend()} jit_compile={args.jit} steps={args.steps} repeats={args.repeats} "
          f"record={args.record} threads={args.threads or 'default'}")
    print(f"{'workload':<10}{'no callback ms/step':>21}{'KerasTripwire ms/step':>23}{'ratio':>7}{'CPU ratio':>11}"
          f"{'A/A ratio':>11}{'A/A CPU':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads:
            r = measure(name, args.steps, args.repeats, args.warmup, args.jit, tmp if args.record else None)
            print(f"{name:<10}{r['none_ms']:>21.3f}{r['tripwire_ms']:>23.3f}{r['ratio']:>7.3f}{r['cpu_ratio']:>11.3f}"
                  f"{r['control']:>11.3f}{r['control_cpu']:>9.3f}")


if __name__ == "__main__":
    main()
