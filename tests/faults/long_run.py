"""Item 7 (and the long form of item 1): the parts of the fault suite over the CI budget.

- a long Lightning run of a tiny MLP with **every** torch rule enabled (``all_zero`` and
  ``low_variance`` on weights, gradients and activations) and a sample every step, measuring
  the process RSS and the run record's size along the way;
- many 2-process DDP runs of each scenario of ``ddp_worker.py``.

Usage (from the repository root)::

    .venv/bin/python tests/faults/long_run.py                  # 50k steps, 50 DDP runs per scenario
    .venv/bin/python tests/faults/long_run.py --steps 5000 --ddp-runs 0 --no-update --json out.json

Unless ``--no-update``, the figures go into ``tests/faults/figures.json`` and
docs/reliability.md is re-rendered. ``test_faults_long.py`` runs the short form in CI
(``--steps 3000 --ddp-runs 0``). Figures:

- ``rss_slope_mib_per_1k_steps``: least-squares slope of RSS over the second half of the run
  (the first half includes allocator and SQLite cache warm-up);
- ``record_kib_per_1k_sampled_steps``: slope of the record's size (SQLite ``page_count *
  page_size`` as a reader sees it, WAL included) against sampled steps;
- ``record_linearity_error``: largest relative distance of that size from the fitted line,
  over the points after the first 10% of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "torch_lightning")]


def every_rule() -> dict:
    """A config enabling every rule type that runs under torch, the opt-in ones included."""
    from tripwire.registry import builtin_rules

    rules: dict = {}
    for kind, cls in builtin_rules().items():
        if "torch" not in cls.frameworks:
            continue
        if "on" in cls.Params.model_fields:
            for target in ("weights", "gradients", "activations"):
                rules[f"{kind}_{target}"] = {"type": kind, "on": target}
                if kind == "low_variance" and target == "gradients":
                    rules[f"{kind}_{target}"]["min"] = 1e-16  # no default for gradients
        else:
            rules[kind] = {}
    return rules


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def record_bytes(path: str) -> int:
    """Logical size of the record as a reader sees it (pages in the file and in the WAL)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return b, my - b * mx


def memory_run(steps: int, prefix: str, points: int = 40) -> dict[str, float]:
    """Train ``steps`` steps with every rule at interval 1; the figures under ``prefix``."""
    import lightning.pytorch as pl
    import torch

    from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire

    torch.set_num_threads(1)
    every = max(1, steps // points)
    marks: list[tuple[int, float, int]] = []  # (step, rss MiB, record bytes)

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            step = trainer.global_step
            if step % every == 0 or step == steps:
                record = cb.monitor._record
                if record is not None:
                    record.flush()
                    marks.append((step, rss_mib(), record_bytes(str(record.path))))

    torch.manual_seed(0)
    log_dir = tempfile.mkdtemp(prefix="tripwire-long-")
    cb = tripwire({"interval": 1, "rules": every_rule()}, log_dir=log_dir)
    x, y = blobs(n=4096, spread=2.0)
    xv, yv = blobs(n=256, seed=1, spread=2.0)
    started = time.monotonic()
    trainer([cb, Probe()], max_steps=steps, val_check_interval=500, check_val_every_n_epoch=None).fit(
        Task(mlp(), lr=0.02), loader(x, y), loader(xv, yv, shuffle=False))
    seconds = time.monotonic() - started
    sampled = len(cb.monitor.sampled_steps)
    half = [m for m in marks if m[0] >= steps / 2]
    rss_per_step, _ = slope([m[0] for m in half], [m[1] for m in half])
    tail = [m for m in marks if m[0] >= steps / 10]
    size_per_step, intercept = slope([m[0] for m in tail], [m[2] for m in tail])
    linearity = max(abs(m[2] - (intercept + size_per_step * m[0])) / m[2] for m in tail)
    final = Path(cb.monitor.record_path).stat().st_size
    shutil.rmtree(log_dir, ignore_errors=True)  # hundreds of MB at 50k steps
    return {
        f"{prefix}.steps": steps,
        f"{prefix}.rss_slope_mib_per_1k_steps": rss_per_step * 1000,
        f"{prefix}.record_kib_per_1k_sampled_steps": size_per_step * 1000 * steps / sampled / 1024,
        f"{prefix}.record_linearity_error": linearity,
        "info.seconds": seconds,
        "info.sampled_steps": sampled,
        "info.rss_start_mib": marks[0][1],
        "info.rss_end_mib": marks[-1][1],
        "info.record_mib": final / 2**20,
        "info.findings": len(cb.findings),
        "info.rules": len(cb.monitor.engine.rules),
    }


def ddp_runs(runs: int, prefix: str = "long.ddp") -> dict[str, float]:
    """``runs`` DDP runs of each stopping scenario (and 2 strict ones); their figures (problems on stderr)."""
    import figures
    from test_faults_ddp import judge, launch

    counts = {"local_fault": runs, "split": runs, "strict": 2}
    with tempfile.TemporaryDirectory() as out:
        results, notes = launch(Path(out), counts, timeout_s=60 + 5 * sum(counts.values()))
    problems = {k: v for k, v in judge(results, counts, notes, prefix).items() if v}
    if problems:
        print(json.dumps(problems, indent=1), file=sys.stderr)
    return {k: v for k, v in figures.session_figures().items() if k.startswith(prefix)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--ddp-runs", type=int, default=50, help="DDP runs per scenario (0: none)")
    parser.add_argument("--prefix", default="long", help="figure prefix (the CI test uses long_ci)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--no-update", action="store_true", help="leave figures.json and the doc alone")
    args = parser.parse_args()
    import figures

    out = memory_run(args.steps, args.prefix) if args.steps else {}
    if args.ddp_runs:
        out.update(ddp_runs(args.ddp_runs))
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    failed = [k for k, v in out.items() if k in figures.FIGURES and not figures.FIGURES[k].passes(v)]
    for key in failed:
        print(f"FAILED {key} = {out[key]:g}, expected {figures.FIGURES[key].bound}", file=sys.stderr)
    if not args.no_update:
        figures.update_store({k: v for k, v in out.items() if k in figures.FIGURES and figures.FIGURES[k].long},
                             long=True, info={k[5:]: v for k, v in out.items() if k.startswith("info.")})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
