"""A 2-process DDP run on CPU (gloo) whose fault is in rank 1's data only.

Run by ``test_lightning_ddp.py`` as ``python ddp_script.py OUT_DIR``; Lightning's subprocess
launcher starts rank 1 by running this script again. Rank 0's labels are balanced; rank 1's
are all class 0, so only the label counts reduced across ranks are imbalanced. Each rank
writes ``rank<N>.json`` with where it stopped and what it found.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch

from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire

MAX_STEPS = 200


def main(out_dir: str) -> None:
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.manual_seed(0)
    x, y = blobs(n=512, classes=2)
    if rank == 1:
        y = torch.zeros_like(y)
    callback = tripwire({"interval": 5, "rules": {"class_imbalance": {"threshold": 2.0, "min_samples": 200,
                                                                      "actions": ["alert", "stop"]}}})
    tr = trainer([callback], max_steps=MAX_STEPS, strategy="ddp", devices=2, use_distributed_sampler=False)
    tr.fit(Task(mlp(classes=2)), loader(x, y, shuffle=False))
    report = {"rank": tr.global_rank, "global_step": tr.global_step, "max_steps": MAX_STEPS,
              "stopped_by": callback.stopped_by.rule if callback.stopped_by else None,
              "findings": [f.to_dict() for f in callback.findings]}
    with open(os.path.join(out_dir, f"rank{tr.global_rank}.json"), "w") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main(sys.argv[1])
