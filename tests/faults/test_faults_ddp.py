"""Item 1: under 2-process DDP every rank stops at the same step, and nothing hangs.

One pair of processes (``ddp_worker.py``) trains many short runs in a row; see its docstring
for the scenarios. CI runs 10 runs of each stopping scenario and 2 strict runs; ``long_run.py
--ddp-runs 50`` runs more. :func:`judge` is shared with ``long_run.py``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from figures import check, record, session_figures

pytestmark = [pytest.mark.torch, pytest.mark.skipif(not torch.distributed.is_available(),
                                                    reason="torch.distributed is not available")]

WORKER = Path(__file__).with_name("ddp_worker.py")
SCENARIOS = ("local_fault", "split", "strict")


def launch(out_dir: Path, runs: dict[str, int], timeout_s: float) -> tuple[list[dict], list[str]]:
    """Run both ranks over the scenarios; their per-run results and, if it timed out, a note per rank."""
    port = str(random.randint(20000, 45000))
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(out_dir), ",".join(runs), ",".join(map(str, runs.values()))],
            env=env, cwd=out_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + timeout_s
    notes = []
    for rank, proc in enumerate(procs):
        try:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            notes.append(f"rank {rank} timed out")
        if proc.returncode != 0:
            notes.append(f"rank {rank} exit {proc.returncode}: {out[-2500:]}")
    results = []
    for rank in (0, 1):
        path = out_dir / f"rank{rank}.jsonl"
        if path.exists():
            results += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return results, notes


def outcome_problem(scenario: str, r0: dict, r1: dict, max_steps: int) -> str | None:
    """What is wrong with one run (both ranks' results), or None."""
    expect = r0["expect"]
    if r0["global_step"] != r1["global_step"]:
        return f"ranks stopped at different steps: {r0['global_step']} vs {r1['global_step']}"
    step = r0["global_step"]
    if scenario == "strict":
        kinds = [r["error"] and r["error"]["type"] for r in (r0, r1)]
        if kinds != ["RuleError", "RuleError"]:
            return f"expected a RuleError on both ranks, got {kinds}: {r0['error']} / {r1['error']}"
        if "boom" not in r1["error"]["message"] or "another rank" not in r0["error"]["message"]:
            return f"unclear errors: {r0['error']['message']!r} / {r1['error']['message']!r}"
        return None if step == expect["step"] + 1 else f"raised after step {step}, expected {expect['step'] + 1}"
    errors = [r["error"] for r in (r0, r1) if r["error"]]
    if errors:
        return f"raised: {errors}"
    if any(r["stopped_by"] is None for r in (r0, r1)):
        return f"a rank does not say what stopped it: {r0['stopped_by']} / {r1['stopped_by']}"
    if scenario == "local_fault":
        if r0["findings"] != r1["findings"]:
            return f"ranks saw different findings: {r0['findings']} vs {r1['findings']}"
        if {r0["stopped_by"], r1["stopped_by"]} != {expect["stopped_by"]}:
            return f"stopped by {r0['stopped_by']}/{r1['stopped_by']}, expected {expect['stopped_by']}"
        if "global_step" in expect:
            return None if step == expect["global_step"] else f"stopped at {step}, expected {expect['global_step']}"
        return None if r0["onset"] < step < max_steps else f"stopped at {step}, fault from step {r0['onset']}"
    if step != expect["global_step"]:  # split: at the earlier of the two ranks' first firing
        return f"stopped at {step}, expected {expect['global_step']}"
    own = {r["rank"]: r["findings"] for r in (r0, r1)}
    first = [r for r in (r0, r1) if r["expect"]["own_step"] + 1 == step]
    if not first or not all(own[r["rank"]] for r in first):
        return f"the rank that crossed first has no finding: {own}"
    return None


def judge(results: list[dict], runs: dict[str, int], notes: list[str], prefix: str, max_steps: int = 64,
          ) -> dict[str, list[str]]:
    """Record the figures of a session; the problems found, per scenario."""
    by_key = {(r["scenario"], r["run"], r["rank"]): r for r in results}
    problems: dict[str, list[str]] = {}
    hung = any("timed out" in n or "Timeout (" in n for n in notes)  # the test's timeout or the watchdog's
    for scenario, count in runs.items():
        done = [run for run in range(count) if (scenario, run, 0) in by_key and (scenario, run, 1) in by_key]
        hangs = count - len(done) if hung else 0
        wrong = [f"run {run}: {p}" for run in done
                 if (p := outcome_problem(scenario, by_key[scenario, run, 0], by_key[scenario, run, 1], max_steps))]
        missing = count - len(done) - hangs  # a rank that crashed between runs
        record(f"{prefix}.{scenario}.runs", len(done))
        record(f"{prefix}.{scenario}.disagreements", len(wrong) + missing)
        record(f"{prefix}.{scenario}.hangs", hangs)
        problems[scenario] = wrong + ([f"{missing} runs did not report"] if missing else [])
    problems["processes"] = notes  # a timeout, or a rank that exited with an error
    seconds = [r["seconds"] for r in results if r["scenario"] != "strict"]
    if seconds:
        record(f"{prefix}.seconds_per_run", statistics.median(seconds))
    return problems


@pytest.mark.timeout(400)
def test_every_rank_stops_at_the_same_step_and_nothing_hangs(tmp_path):
    runs = {"local_fault": 10, "split": 10, "strict": 2}
    results, notes = launch(tmp_path, runs, timeout_s=330)
    problems = judge(results, runs, notes, "ddp")
    assert not any(problems.values()), problems
    for scenario in SCENARIOS:
        for name in ("runs", "disagreements", "hangs"):
            key = f"ddp.{scenario}.{name}"
            check(key, session_figures()[key])
