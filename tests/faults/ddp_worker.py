"""One rank of a 2-process DDP session on CPU (gloo) that trains many short runs in a row.

Started twice by ``test_faults_ddp.py`` (or ``long_run.py``) with ``LOCAL_RANK`` set, so
Lightning joins the processes instead of launching its own; the process group is set up once
and reused by every run, which keeps a run to about a second. Usage::

    LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29501 python ddp_worker.py OUT local_fault,split 10,10 &
    LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29501 python ddp_worker.py OUT local_fault,split 10,10

Scenarios (the fault onset step is drawn per run from the run index, the same on both ranks):

- ``local_fault``: only rank 1's data goes bad at step ``onset``: its labels collapse to one
  class (even runs, ``class_imbalance``) or its inputs turn NaN (odd runs, ``nonfinite``).
- ``split``: each rank reports its own ``user/signal`` (``tripwire.observe``) and crosses the
  limit at a different step, so the stopping rule fires on each rank at a different sampled step.
- ``strict``: a user rule raises on rank 1 only, with ``strict=True``.

Each rank appends one JSON line per run to ``OUT/rank<R>.jsonl``: where it stopped, what
stopped it, what it expected, and the error if the run raised. A run that takes longer than
``RUN_TIMEOUT_S`` is a hang: faulthandler prints every thread's stack and ends the process.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import time
from datetime import timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "torch_lightning")]

import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

import tripwire as tw
from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire

INTERVAL = 4
MAX_STEPS = 64
RUN_TIMEOUT_S = float(os.environ.get("RUN_TIMEOUT_S", "90"))


class Signalling(Task):
    """Reports ``user/signal`` (1.0 from step ``cross`` on, else 0.0) and ``user/rank``."""

    def __init__(self, net: nn.Module, cross: int, rank: int) -> None:
        super().__init__(net)
        self.cross, self.rank_id = cross, rank

    def training_step(self, batch, batch_idx):
        tw.observe("signal", float(self.trainer.global_step >= self.cross))
        tw.observe("rank", float(self.rank_id))
        return super().training_step(batch, batch_idx)


def first_sample_at_or_after(step: int) -> int:
    return -(-step // INTERVAL) * INTERVAL


def plan(scenario: str, run: int, rank: int) -> dict:
    """Data, config and the expected outcome of one run (the same plan on both ranks but the data)."""
    onset = 6 + (run * 7) % 30  # 6..35: a different step each run, same on both ranks
    x, y = blobs(n=MAX_STEPS * 16, classes=2, seed=run)
    task: Task = Task(mlp(classes=2))
    config: dict = {"interval": INTERVAL}
    strict = False
    if scenario == "local_fault":
        if run % 2 == 0:
            if rank == 1:
                y[onset * 16:] = 0
            config["rules"] = {"class_imbalance": {"threshold": 1.5, "min_samples": 64, "actions": ["stop"]}}
            expect = {"stopped_by": "class_imbalance", "after": onset}
        else:
            if rank == 1:
                x[onset * 16:] = float("nan")
            config["rules"] = {"nonfinite": {"actions": ["stop"]}}
            expect = {"stopped_by": "nonfinite", "global_step": first_sample_at_or_after(onset) + 1}
    elif scenario == "split":
        crosses = (onset, onset + 5 + run % 9)  # who crosses first alternates with the run
        cross = crosses[(rank + run) % 2]
        task = Signalling(mlp(classes=2), cross, rank)
        config["rules"] = {"signal": {"type": "user_rules:AboveLimit", "series": "user/signal", "limit": 0.0,
                                      "actions": ["stop"]}}
        first = min(first_sample_at_or_after(c) for c in crosses)
        expect = {"global_step": first + 1, "own_step": first_sample_at_or_after(cross)}
    elif scenario == "strict":
        task = Signalling(mlp(classes=2), MAX_STEPS, rank)
        config["rules"] = {"boom": {"type": "user_rules:RaisesAfter", "after": onset, "rank": 1}}
        strict = True
        expect = {"error": "RuleError", "step": first_sample_at_or_after(onset)}
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    return {"x": x, "y": y, "task": task, "config": config, "strict": strict, "expect": expect, "onset": onset}


def one_run(scenario: str, run: int, rank: int) -> dict:
    torch.manual_seed(run)
    p = plan(scenario, run, rank)
    callback = tripwire(p["config"], strict=p["strict"])
    strategy = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=RUN_TIMEOUT_S))
    tr = trainer([callback], max_steps=MAX_STEPS, strategy=strategy, devices=2, use_distributed_sampler=False)
    started = time.monotonic()
    error = None
    try:
        tr.fit(p["task"], loader(p["x"], p["y"], batch_size=16, shuffle=False))
    except Exception as exc:  # noqa: BLE001 - the outcome is what this script reports
        error = {"type": type(exc).__name__, "message": str(exc)[:500]}
    return {"scenario": scenario, "run": run, "rank": rank, "global_step": tr.global_step,
            "stopped_by": callback.stopped_by.rule if callback.stopped_by else None,
            "findings": [(f.rule, f.step) for f in callback.findings], "onset": p["onset"],
            "expect": p["expect"], "error": error, "seconds": round(time.monotonic() - started, 3)}


def main(out_dir: str, scenarios: str, runs: str) -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    rank = int(os.environ["LOCAL_RANK"])
    with open(os.path.join(out_dir, f"rank{rank}.jsonl"), "a") as out:
        for scenario, count in zip(scenarios.split(","), map(int, runs.split(","))):
            for run in range(count):
                faulthandler.dump_traceback_later(RUN_TIMEOUT_S + 30, exit=True)  # a hang ends the process
                result = one_run(scenario, run, rank)
                faulthandler.cancel_dump_traceback_later()
                out.write(json.dumps(result) + "\n")
                out.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
