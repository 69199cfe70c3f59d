"""One rank of a 2-process plain-loop DDP run on CPU (gloo) whose fault is in rank 1's data only.

Run twice by ``test_loop_ddp.py`` as ``python loop_ddp_script.py OUT_DIR SCENARIO`` with ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. Scenarios:

- ``labels``: rank 1's labels are all class 0, so only the label counts reduced across ranks are
  imbalanced (``class_imbalance``, with the ``alert`` and ``stop`` actions);
- ``nan``: rank 1's inputs turn NaN from step 13 (``nonfinite``; gradients are averaged by DDP,
  so both ranks see them, and the loss only on rank 1);
- ``spike``: rank 1's inputs are x1000 at step 80 (``loss_spike`` with ``skip_step`` and
  ``reduce_lr``: the averaged gradient spikes on both ranks, so both leave that update out, and both
  halve the learning rate at the next decision);
- ``budget``: ``overhead_budget`` sets the interval, and rank 1's sampled steps take 100 ms longer
  (rank 0 waits for it in the next collective, so both measure about the same; their intervals
  still come from one value, reduced with ``max`` in the packed vector).

Each rank writes ``rank<N>.json``: where it stopped, what it found, and the sum of its weights.
"""

import json
import os
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import torch.distributed as dist
from torch import nn

from loop_kit import batches, blobs, mlp
from tripwire.torch import Tripwire

MAX_STEPS = 120


def main(out_dir: str, scenario: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(mlp(classes=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = blobs(n=1024, classes=2, seed=rank)
    if scenario == "labels":
        if rank == 1:
            y = torch.zeros_like(y)
        config = {"interval": 5, "rules": {"class_imbalance": {"threshold": 2.0, "min_samples": 200,
                                                               "actions": ["alert", "stop"]}},
                  "actions": {"console": {}}}
    elif scenario == "budget":
        config = {"overhead_budget": 0.5, "max_interval": 15, "rules": {"nonfinite": {}}, "actions": {"console": {}}}
    elif scenario == "spike":
        config = {"interval": 5, "rules": {"loss_spike": {"window": 64, "warmup": 32,
                                                          "actions": ["alert", "skip_step",
                                                                      {"reduce_lr": {"factor": 0.5}}]}}}
    else:
        config = {"interval": 5, "rules": {"nonfinite": {}}, "actions": {"console": {}}}
    tw = Tripwire(model, optimizer, config, log_dir=os.path.join(out_dir, "runs"), run_name="run")
    data = batches(x, y)
    stopped_at = None
    for step in range(MAX_STEPS):
        xb, yb = next(data)
        if scenario == "nan" and rank == 1 and step >= 13:
            xb = xb * float("nan")
        if scenario == "spike" and rank == 1 and step == 80:
            xb = xb * 1000
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if scenario == "budget" and rank == 1 and tw.driver.sampled:
            time.sleep(0.1)
        if tw.step(loss, inputs=xb, labels=yb):
            stopped_at = step
            break
    tw.close()
    report = {"rank": rank, "stopped_at": stopped_at, "steps": tw.steps,
              "stopped_by": tw.stopped_by.rule if tw.stopped_by else None,
              "findings": [f.to_dict() for f in tw.findings], "record": tw.monitor.record_path,
              "sampled": sorted(tw.monitor.sampled_steps), "interval": tw.monitor.interval,
              "weights": sum(p.detach().double().sum().item() for p in model.parameters()),
              "lr_scale": tw.driver.lr.scale}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump(report, fh)
    # leave together: a rank that tears gloo down while the other is still in it may abort the other
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
