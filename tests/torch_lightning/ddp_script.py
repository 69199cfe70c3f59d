"""A 2-process DDP run on CPU (gloo) whose fault is in rank 1's data only.

Run by ``test_lightning_ddp.py`` as ``python ddp_script.py OUT_DIR [SCENARIO]``; Lightning's
subprocess launcher starts rank 1 by running this script again. Scenarios:

- ``labels`` (the default): rank 0's labels are balanced; rank 1's are all class 0, so only the
  label counts reduced across ranks are imbalanced;
- ``spike``: rank 1's batch of step 120 has its inputs x1000 (``loss_spike`` with ``skip_step`` and
  ``reduce_lr``: DDP's averaged gradient spikes on both ranks).
- ``rollback``: the same batch, with ``loss_spike`` and ``rollback`` (a state kept every 50 steps):
  both ranks restore the state of step 100 at the same decision.

Each rank writes ``rank<N>.json`` with where it stopped, what it found and the sum of its weights.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch

from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire

MAX_STEPS = 200


SPIKED = 120


class Poisoned(Task):
    """Rank 1's batch of step ``SPIKED`` has its inputs x1000."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.global_rank == 1 and self.global_step == SPIKED:
            x = x * 1000
        return torch.nn.functional.cross_entropy(self(x), y)


def main(out_dir: str, scenario: str = "labels") -> None:
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.manual_seed(0)
    x, y = blobs(n=512, classes=2, seed=rank, spread=2.0)  # overlapping: inputs x1000 make a loss spike
    if scenario in ("spike", "rollback"):
        actions = ["alert", "skip_step", {"reduce_lr": {"factor": 0.5}}] if scenario == "spike" else \
            ["alert", {"rollback": {"every": 50}}]
        config = {"interval": 5, "rules": {"loss_spike": {"actions": actions}}}
        task = Poisoned(mlp(classes=2))
    else:
        x, y = blobs(n=512, classes=2)
        if rank == 1:
            y = torch.zeros_like(y)
        config = {"interval": 5, "rules": {"class_imbalance": {"threshold": 2.0, "min_samples": 200,
                                                               "actions": ["alert", "stop"]}}}
        task = Task(mlp(classes=2))
    callback = tripwire(config)
    tr = trainer([callback], max_steps=MAX_STEPS, strategy="ddp", devices=2, use_distributed_sampler=False)
    tr.fit(task, loader(x, y, shuffle=False))
    report = {"rank": tr.global_rank, "global_step": tr.global_step, "max_steps": MAX_STEPS,
              "stopped_by": callback.stopped_by.rule if callback.stopped_by else None,
              "findings": [f.to_dict() for f in callback.findings],
              "weights": sum(p.detach().double().sum().item() for p in task.parameters()),
              "lr_scale": callback.driver.lr.scale}
    with open(os.path.join(out_dir, f"rank{tr.global_rank}.json"), "w") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main(*sys.argv[1:])
