"""DDP on CPU: a fault in one rank's data stops every rank at the same step, without a hang."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.torch, pytest.mark.skipif(not torch.distributed.is_available(),
                                                    reason="torch.distributed is not available")]

SCRIPT = Path(__file__).with_name("ddp_script.py")


def run_ranks(tmp_path: Path, *scenario: str) -> list[dict]:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(random.randint(20000, 40000)),
               OMP_NUM_THREADS="1")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), *scenario], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.timeout(150)
def test_rank_local_fault_stops_both_ranks_together(tmp_path):
    reports = run_ranks(tmp_path)
    steps = {r["global_step"] for r in reports}
    assert len(steps) == 1, reports  # both ranks stopped at the same step
    assert steps.pop() < reports[0]["max_steps"]
    assert [r["stopped_by"] for r in reports] == ["class_imbalance", "class_imbalance"]
    # rank 0's own labels are balanced: only the counts reduced across ranks show the imbalance
    counts = reports[0]["findings"][0]["evidence"]["counts"]
    assert counts["0"] == pytest.approx(3 * counts["1"], rel=0.05)


@pytest.mark.timeout(150)
def test_a_spike_on_one_rank_is_skipped_by_both_and_both_lower_the_lr(tmp_path):
    reports = run_ranks(tmp_path, "spike")
    assert [r["global_step"] for r in reports] == [200, 200]  # no hang, no stop
    found = [[(f["kind"], f["step"], f["evidence"].get("last_spike_step"), f["evidence"].get("steps_skipped"))
              for f in r["findings"] if not f["kind"].endswith("_effect")] for r in reports]
    assert found[0] == found[1] == [("loss_spike", 120, 120, 1), ("reduce_lr", 120, None, None)]
    assert reports[0]["weights"] == reports[1]["weights"]  # the replicas are still the same
    assert [r["lr_scale"] for r in reports] == [0.5, 0.5]


@pytest.mark.timeout(150)
def test_a_spike_on_one_rank_rolls_both_back_to_the_same_state(tmp_path):
    reports = run_ranks(tmp_path, "rollback")
    assert [r["global_step"] for r in reports] == [200, 200]  # no hang, no stop
    done = [[(f["kind"], f["step"], f["evidence"].get("restored_step"), f["evidence"].get("skipped"))
             for f in r["findings"] if f["kind"] == "rollback"] for r in reports]
    assert done[0] == done[1] == [("rollback", 120, 100, [101, 120])]
    assert reports[0]["weights"] == reports[1]["weights"]  # the replicas are still the same
