"""The Trainer's DDP on CPU (two ranks, gloo): the statistics are reduced across ranks and every
rank stops at the same step, without a hang."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.torch, pytest.mark.skipif(not torch.distributed.is_available(),
                                                    reason="torch.distributed is not available")]

SCRIPT = Path(__file__).with_name("hf_ddp_script.py")


@pytest.mark.timeout(200)
def test_labels_of_one_rank_stop_both_ranks_at_the_same_step(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(random.randint(20000, 40000)), str(SCRIPT), str(tmp_path)]
    proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    # 2 ranks x 32 labels a step: 512 labels after step 7; both stop there, the stopping step run
    assert [(r["stopped_by"], r["step"], r["global_step"]) for r in reports] == [("class_imbalance", 7, 8)] * 2
    assert [r["logged"] for r in reports] == [1, 1]  # in each rank's log history
    # rank 0's own labels are balanced: only the counts reduced across ranks show the imbalance
    counts = reports[0]["findings"][0]["evidence"]["counts"]
    assert counts["0"] == pytest.approx(3 * counts["1"], rel=0.15)
    # the training loss, reduced across ranks, is the one the Trainer logs
    assert reports[0]["losses"] == pytest.approx(reports[0]["trainer_losses"], rel=1e-4)
