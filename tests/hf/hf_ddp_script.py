"""Two ranks (run under ``torch.distributed.run``) fine-tune the tiny BERT with the Trainer's DDP
on CPU; rank 1's labels are all 0, rank 0's balanced. Each rank writes what it saw to
``rank<r>.json`` in the folder given as the argument."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hf_kit import examples, train, tripwire_entries
from tripwire.record import Run
from tripwire.transformers import TripwireCallback

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])
cb = TripwireCallback({"rules": {"class_imbalance": {"threshold": 2}, "underfit": {}}}, stop_on=["class_imbalance"],
                      interval=1, log_dir=str(out / "runs"))
trainer = train([cb], out, steps=100, eval_steps=None, ddp_backend="gloo", ddp_find_unused_parameters=False,
                logging_steps=1, train_set=examples(2048, positive=0.5 if rank == 0 else 0.0))
report = {"global_step": trainer.state.global_step, "world_size": trainer.args.world_size,
          "stopped_by": cb.stopped_by and cb.stopped_by.rule, "step": cb.stopped_by and cb.stopped_by.step,
          "findings": [f.to_dict() for f in cb.findings], "logged": len(tripwire_entries(trainer)),
          "trainer_losses": [e["loss"] for e in trainer.state.log_history if "loss" in e]}
if rank == 0:  # the run record is rank 0's
    report["losses"] = Run(os.path.dirname(cb.monitor.record_path)).series("loss", None)[1].tolist()
(out / f"rank{rank}.json").write_text(json.dumps(report))
