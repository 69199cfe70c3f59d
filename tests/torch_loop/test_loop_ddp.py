"""DDP on CPU with the plain loop: a fault in one rank's data stops both ranks at the same step,
and only rank 0 alerts and writes the run record."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.torch, pytest.mark.skipif(not torch.distributed.is_available(),
                                                    reason="torch.distributed is not available")]

SCRIPT = Path(__file__).with_name("loop_ddp_script.py")


def run_ranks(tmp_path: Path, scenario: str) -> tuple[list[dict], list[str]]:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(random.randint(20000, 40000)),
               WORLD_SIZE="2", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), scenario], env=dict(env, RANK=str(r)),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)], outputs


@pytest.mark.timeout(150)
def test_rank_local_labels_stop_both_ranks_together_and_only_rank_0_alerts_and_records(tmp_path):
    reports, outputs = run_ranks(tmp_path, "labels")
    assert reports[0]["stopped_at"] is not None and reports[0]["stopped_at"] == reports[1]["stopped_at"] < 119
    assert [r["stopped_by"] for r in reports] == ["class_imbalance", "class_imbalance"]
    counts = reports[0]["findings"][0]["evidence"]["counts"]  # rank 0's labels alone are balanced: the
    assert counts["1"] > 0 and counts["0"] > 2 * counts["1"]  # counts are both ranks', reduced
    assert reports[0]["record"] and reports[1]["record"] is None
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["run"]
    alerts = ["tripwire warning: class_imbalance" in out for out in outputs]
    assert alerts == [True, False]


@pytest.mark.timeout(150)
def test_nan_on_one_rank_stops_both_at_the_same_sampled_step(tmp_path):
    reports, _ = run_ranks(tmp_path, "nan")
    assert [r["stopped_at"] for r in reports] == [15, 15]  # the first sampled step after 13
    assert [r["stopped_by"] for r in reports] == ["nonfinite", "nonfinite"]


@pytest.mark.timeout(150)
def test_under_an_overhead_budget_both_ranks_sample_the_same_steps(tmp_path):
    reports, _ = run_ranks(tmp_path, "budget")
    assert reports[0]["sampled"] == reports[1]["sampled"]
    # alone, a sample costs about a plain step here (every 2-3 steps at a 50% budget); 100 ms asks
    # for far more than the longest interval allowed
    assert reports[0]["interval"] == reports[1]["interval"] == 15
    gaps = {b - a for a, b in zip(reports[0]["sampled"], reports[0]["sampled"][1:])}
    assert 10 in gaps and max(gaps) > 10  # it started at the config's interval and lengthened it


@pytest.mark.timeout(150)
def test_a_spike_on_one_rank_is_skipped_by_both_at_the_same_step_and_both_lower_the_lr(tmp_path):
    reports, _ = run_ranks(tmp_path, "spike")
    assert [r["steps"] for r in reports] == [120, 120]  # no hang, no stop
    found = [[(f["kind"], f["step"], f["evidence"].get("last_spike_step"), f["evidence"].get("steps_skipped"))
              for f in r["findings"] if not f["kind"].endswith("_effect")] for r in reports]
    assert found[0] == found[1] == [("loss_spike", 80, 80, 1), ("reduce_lr", 80, None, None)]
    assert [r["lr_scale"] for r in reports] == [0.5, 0.5]
    assert reports[0]["weights"] == reports[1]["weights"]  # the ranks' models are still the same
