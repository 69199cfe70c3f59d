"""XGBoostTripwire overhead: per-round cost vs model size, and total cost vs an unmonitored run.

Two measurements, in one process, on synthetic data (``tripwire.kit.data.tabular``, no download):

1. **Per-round cost is flat.** A training of ``--long-rounds`` (default 2000) rounds with every
   XGBoost statistic enabled (tree depth, feature importance, losses, labels) gives the wall
   time the callback adds per round, near round 100 (rounds 50-150) and over the last 100
   rounds. Wall time on a shared machine is noisy, so the cost of one sample is also replayed
   on the finished model cut to 100 and to 2000 rounds (``booster[:n]``): the callback takes a
   sample at round n exactly as in training, best of ``--repeats``, at ``interval=10`` (the
   default) and ``interval=1`` (every round, the worst case). For contrast, one full-model JSON
   dump, what a naive depth check would pay every round.
2. **Total overhead.** ``--rows`` x 50 (default 100k x 50), ``--rounds`` rounds, default config
   (``config=None``) with train and validation eval sets and ``labels=``, against the same
   training without the callback. Runs alternate; the best of ``--repeats`` is kept for each,
   which suppresses noise from other processes on a shared machine.

Run:
    python benchmarks/overhead_xgboost.py            # full (about 3 minutes on 2 idle cores)
    python benchmarks/overhead_xgboost.py --quick    # smaller, for a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import time

import numpy as np
import xgboost as xgb

from tripwire import XGBoostTripwire
from tripwire.kit.data import tabular

EVERY_STAT = {"rules": {"tree_depth": {}, "low_feature_importance": {}, "overfit": {}, "overtraining": {},
                        "loss_not_decreasing": {}, "underfit": {}, "class_imbalance": {}}}
PARAMS = {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "objective": "binary:logistic", "nthread": 2}


class Timed(XGBoostTripwire):
    """XGBoostTripwire that records the wall time of each ``after_iteration`` call."""

    def before_training(self, model):
        self.wall = []
        return super().before_training(model)

    def after_iteration(self, model, epoch, evals_log):
        t0 = time.perf_counter()
        out = super().after_iteration(model, epoch, evals_log)
        self.wall.append(time.perf_counter() - t0)
        return out


def data(rows: int, features: int = 50, seed: int = 0):
    """80% training, 20% validation rows of a binary target that 10 of the ``features`` columns predict."""
    X, y = tabular(rows, features, informative=10, noise=1.0, seed=seed)
    split = int(rows * 0.8)
    return X[:split], y[:split], X[split:], y[split:]


def quiet():
    """Swallow the end-of-run summary the monitor prints."""
    return contextlib.redirect_stdout(io.StringIO())


def best_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def replay_sample(bst: xgb.Booster, history: dict, labels: np.ndarray, n: int, interval: int) -> float:
    """Wall ms of the callback's sample at round n-1 of a model of n rounds (monitor already open)."""
    cb = XGBoostTripwire(EVERY_STAT, interval=interval, labels=labels, log_dir=False)
    cb.before_training(bst[:n - 2 * interval])
    log = {name: {m: v[:n - interval] for m, v in metrics.items()} for name, metrics in history.items()}
    cb.after_iteration(bst[:n - interval], n - interval - 1, log)  # warm: opens the monitor, sends labels
    model = bst[:n]
    log = {name: {m: v[:n] for m, v in metrics.items()} for name, metrics in history.items()}
    t0 = time.perf_counter()
    cb.after_iteration(model, n - 1, log)
    elapsed = time.perf_counter() - t0
    with quiet():
        cb.after_training(model)
    return elapsed * 1e3


def per_round(rows: int, rounds: int, repeats: int, log_dir: str) -> list[tuple[str, float, float]]:
    """(what, ms near round 100, ms near the last round) rows of the per-round table."""
    Xt, yt, Xv, yv = data(rows)
    dtrain, dval = xgb.DMatrix(Xt, yt), xgb.DMatrix(Xv, yv)
    history: dict = {}
    cb = Timed(EVERY_STAT, labels=yt, log_dir=log_dir)
    with quiet():
        bst = xgb.train(PARAMS, dtrain, rounds, evals=[(dtrain, "train"), (dval, "validation")],
                        evals_result=history, callbacks=[cb], verbose_eval=False)
    wall = np.array(cb.wall) * 1e3
    out = [("in training, interval=10: wall per round", wall[50:150].mean(), wall[-100:].mean())]
    for interval in (10, 1):
        cost = [min(replay_sample(bst, history, yt, n, interval) for _ in range(repeats)) for n in (100, rounds)]
        out.append((f"one sample, interval={interval}", *cost))
        out.append((f"  = per round, interval={interval}", cost[0] / interval, cost[1] / interval))
    dump = [best_ms(lambda n=n: bst[:n].get_dump(dump_format="json"), repeats) for n in (100, rounds)]
    out.append(("naive: full JSON dump, per round", *dump))
    return out


def total(rows: int, rounds: int, repeats: int, log_dir: str) -> tuple[float, float]:
    Xt, yt, Xv, yv = data(rows)
    dtrain, dval = xgb.DMatrix(Xt, yt), xgb.DMatrix(Xv, yv)
    evals = [(dtrain, "train"), (dval, "validation")]
    base, monitored = [], []
    xgb.train(PARAMS, dtrain, 5, evals=evals, verbose_eval=False)  # warm up
    for _ in range(repeats):
        t0 = time.perf_counter()
        xgb.train(PARAMS, dtrain, rounds, evals=evals, verbose_eval=False)
        base.append(time.perf_counter() - t0)
        cb = XGBoostTripwire(labels=yt, log_dir=log_dir)
        t0 = time.perf_counter()
        with quiet():
            xgb.train(PARAMS, dtrain, rounds, evals=evals, callbacks=[cb], verbose_eval=False)
        monitored.append(time.perf_counter() - t0)
    return min(base), min(monitored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long-rows", type=int, default=20_000)
    parser.add_argument("--long-rounds", type=int, default=2000)
    parser.add_argument("--log-dir", default=None, help="where the run records go (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="10k rows, 300 long rounds, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds, args.repeats, args.long_rows, args.long_rounds = 10_000, 50, 2, 5_000, 300
    logging.getLogger("tripwire").setLevel(logging.ERROR)  # the workloads overfit: keep findings off the table
    print(f"xgboost {xgb.__version__}, max_depth 6, hist, nthread 2")
    with contextlib.ExitStack() as stack:
        import tempfile

        log_dir = args.log_dir or stack.enter_context(tempfile.TemporaryDirectory())
        rows = per_round(args.long_rows, args.long_rounds, args.repeats, log_dir)
        print(f"\nCallback cost vs model size, every XGBoost statistic, {args.long_rows} rows x 50 (ms):")
        print(f"| {'what':<42} | {'round ~100':>10} | {f'round ~{args.long_rounds}':>11} |")
        print(f"|{'-' * 44}|{'-' * 12}|{'-' * 13}|")
        for name, early, late in rows:
            print(f"| {name:<42} | {early:>10.3f} | {late:>11.3f} |")
        base, monitored = total(args.rows, args.rounds, args.repeats, log_dir)
    print(f"\nTotal overhead, default config, {args.rows} x 50, {args.rounds} rounds, train+validation evals "
          f"(best of {args.repeats}):")
    print(f"| {'run':<24} | {'seconds':>8} | {'ms/round':>8} |")
    print(f"|{'-' * 26}|{'-' * 10}|{'-' * 10}|")
    print(f"| {'no callback':<24} | {base:>8.3f} | {base / args.rounds * 1e3:>8.2f} |")
    print(f"| {'XGBoostTripwire()':<24} | {monitored:>8.3f} | {monitored / args.rounds * 1e3:>8.2f} |")
    print(f"\noverhead: {(monitored - base) / base:+.1%}")


if __name__ == "__main__":
    main()
