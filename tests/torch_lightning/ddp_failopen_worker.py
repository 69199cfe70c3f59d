"""One rank of a 2-process DDP session (gloo, CPU) where tripwire's own code fails on rank 1 only.

Started twice by ``test_lightning_failopen.py`` with ``LOCAL_RANK`` set, so Lightning joins the
processes instead of launching its own; the process group serves every run of the session::

    LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29502 python ddp_failopen_worker.py OUT none,data &
    LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29502 python ddp_failopen_worker.py OUT none,data

Scenario ``none`` trains without tripwire, ``healthy`` with it; every other one trains with it
and makes one of tripwire's functions raise on rank 1 only, from its ``after``-th call on (see
``FAULTS``). Each rank appends one JSON line per run to ``OUT/rank<R>.jsonl``: the step it
reached, the step at which its collector was switched off, the parts its guard switched off,
the series its rules saw, and its final weights.
A run that takes longer than ``RUN_TIMEOUT_S`` is a hang: faulthandler prints every thread's
stack and ends the process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import sys
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from lightning.pytorch.strategies import DDPStrategy

from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire
from tripwire.callbacks.torch import activations as torch_activations
from tripwire.callbacks.torch import packing as torch_packing
from tripwire.callbacks.torch.activations import ActivationProbe
from tripwire.callbacks.torch.batch import ConfusionProbe, DataProbe

MAX_STEPS = 8
RUN_TIMEOUT_S = float(os.environ.get("RUN_TIMEOUT_S", "60"))

#: scenario -> (owner, function, calls before it fails on rank 1), and where that failure happens
FAULTS = {
    "data": (DataProbe, "_add", 2),  # reading step 2's batch: before that flush's gather
    "pack": (torch_packing, "_flat", 3),  # packing step 2's flush (call 0 packs the initial weights)
    "read": (torch_packing.Packed, "read", 3),  # reading step 2's flush, after its gather
    "allocate": (ActivationProbe, "allocate", 0),  # setting up: agreed at fit start
    "confusion": (ConfusionProbe, "_count", 0),  # the first validation batch: before that run's gather
    "probe": (torch_activations, "reduce_dims", 0),  # every activation probe: their slots stay, nothing is agreed
}


class Injected(RuntimeError):
    """The failure planted in tripwire's own code."""


@contextlib.contextmanager
def failing_from(owner: object, name: str, after: int):
    original = getattr(owner, name)
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise Injected(f"planted in {name} on rank 1")
        return original(*args, **kwargs)

    setattr(owner, name, failing)
    try:
        yield
    finally:
        setattr(owner, name, original)


def one_run(scenario: str, rank: int) -> dict:
    torch.manual_seed(0)
    task = Task(mlp(features=4, hidden=16, classes=2))
    x, y = blobs(n=64, features=4, classes=2, seed=rank)
    callback = None if scenario == "none" else tripwire({"interval": 1})
    strategy = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=RUN_TIMEOUT_S))
    tr = trainer([] if callback is None else [callback], max_steps=MAX_STEPS, strategy=strategy, devices=2,
                 use_distributed_sampler=False)
    switched_off, series = [], set()
    if callback is not None:
        switch_off, process = callback.driver.switch_off_collector, callback.monitor.process
        callback.monitor.process = lambda sample: (series.update(k.split("[")[0] for k in sample.stats),
                                                   process(sample))[1]

        def recording():
            switched_off.append(tr.global_step)
            return switch_off()

        callback.driver.switch_off_collector = recording
    fault = FAULTS.get(scenario) if rank == 1 else None
    with failing_from(*fault) if fault else contextlib.nullcontext():
        tr.fit(task, loader(x, y, batch_size=16, shuffle=False), loader(x, y, batch_size=32, shuffle=False))
    return {"scenario": scenario, "rank": rank, "global_step": tr.global_step, "switched_off": switched_off,
            "collector": None if callback is None else callback.collector is not None,
            "disabled": {} if callback is None else dict(callback.monitor.guard.disabled), "series": sorted(series),
            "weights": torch.cat([p.detach().flatten() for p in task.parameters()]).tolist()}


def main(out_dir: str, scenarios: str) -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    rank = int(os.environ["LOCAL_RANK"])
    with open(os.path.join(out_dir, f"rank{rank}.jsonl"), "a") as out:
        for scenario in scenarios.split(","):
            faulthandler.dump_traceback_later(RUN_TIMEOUT_S + 30, exit=True)  # a hang ends the process
            out.write(json.dumps(one_run(scenario, rank)) + "\n")
            out.flush()
            faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
