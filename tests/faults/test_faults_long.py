"""Item 7, CI form: 3k steps of a tiny model with every rule enabled and a sample every step.

Runs ``long_run.py --steps 3000`` in a fresh process (so the RSS is the run's alone) and checks
its figures: RSS slope over the second half, record size per 1k sampled steps, linearity of
the record's growth. ``python tests/faults/long_run.py`` is the 50k-step form.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytestmark = [pytest.mark.torch, pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")]

from figures import FIGURES, check

SCRIPT = Path(__file__).with_name("long_run.py")
STEPS = 3000


@pytest.mark.timeout(300)
def test_memory_flat_and_record_linear_over_3k_sampled_steps(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", str(STEPS), "--ddp-runs", "0", "--prefix",
                           "long_ci", "--no-update", "--json", str(out)], capture_output=True, text=True, timeout=280)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["info.sampled_steps"] >= STEPS and figures["info.rules"] >= 20  # every rule, every step
    for key in [k for k in figures if k in FIGURES]:
        check(key, figures[key])
    assert proc.returncode == 0, proc.stderr[-3000:]
