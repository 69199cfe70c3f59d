"""Run the healthy-run corpus and its fault twins with tripwire's default rules; print one table.

Every healthy entry is a real architecture trained the way its users train it (CPU-sized,
synthetic data or scikit-learn's bundled sets); every twin is the same training with one planted
fault. Healthy runs record every rule's statistics (``shadow: true``) and report, per default rule,
its margin from ``tripwire calibrate``; twins run with ``config=None`` and report which rules fired
and whether an expected one did.

    python benchmarks/corpus.py                               # everything; writes corpus_results.md/.json
    python benchmarks/corpus.py --only lightning/lstm         # one healthy entry and its twins
    python benchmarks/corpus.py --framework xgboost --list    # what would run

Each entry runs in its own process (Keras and torch never share one; one thread each), its
output in ``<log-dir>/<entry>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus.registry import FRAMEWORKS, Entry, load
from corpus.runner import Outcome, run_entry
from corpus.table import markdown, text_table

RESULTS_MD = HERE / "corpus_results.md"
RESULTS_JSON = HERE / "corpus_results.json"


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)}


def run_in_child(entry: Entry, log_dir: Path, timeout: float) -> Outcome:
    """Run ``entry`` in a fresh interpreter (``--worker``); its output goes to ``<entry>.log``."""
    slug = entry.name.replace("/", "-")
    result = log_dir / f"{slug}.json"
    log = log_dir / f"{slug}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", entry.name, "--result", str(result),
           "--log-dir", str(log_dir)]
    start = time.perf_counter()
    with open(log, "w") as out:
        try:
            code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(), timeout=timeout,
                                  check=False).returncode
        except subprocess.TimeoutExpired:
            code = None
    if result.exists():
        return Outcome.from_dict(json.loads(result.read_text()))
    why = f"timed out after {timeout:.0f} s" if code is None else f"worker exited with {code}; see {log}"
    return Outcome(entry.name, entry.framework, entry.healthy, entry.fault, list(entry.expect), entry.blocked,
                   seconds=time.perf_counter() - start, error=why)


def worker(name: str, result: Path, log_dir: Path) -> int:
    """The child side: prepare the framework (one thread), run one entry, write its outcome."""
    entry = load().entries[name]
    if entry.framework == "lightning":
        import torch

        torch.set_num_threads(1)
    elif entry.framework == "keras":
        import keras  # noqa: F401 - imported before the clock starts
    else:
        import xgboost  # noqa: F401 - imported before the clock starts
    outcome = run_entry(entry, log_dir)
    result.write_text(json.dumps(outcome.to_dict(), indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        help="entries to run (a healthy entry brings its twins)")
    parser.add_argument("--framework", nargs="+", default=[], choices=FRAMEWORKS)
    parser.add_argument("--list", action="store_true", help="list the selected entries and exit")
    parser.add_argument("--slow", action="store_true", help="also run the slow entries (minutes each)")
    parser.add_argument("--log-dir", type=Path, help="run records and logs (default: a temporary directory)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one entry may take (default 600)")
    parser.add_argument("--md", type=Path, help=f"write the Markdown table here (default with no selection: "
                                                f"{RESULTS_MD.name})")
    parser.add_argument("--json", type=Path, help=f"write the outcomes as JSON here (default with no selection: "
                                                  f"{RESULTS_JSON.name})")
    parser.add_argument("--update", action="store_true",
                        help="merge these outcomes into the existing JSON (replacing the entries rerun) and "
                             "rewrite the table from it")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: print the table of the saved JSON and rewrite its Markdown")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.result, args.log_dir)

    if args.render:
        return render(args.json or RESULTS_JSON, args.md or RESULTS_MD)
    entries = load().select(args.only, args.framework, slow=args.slow)
    if args.list:
        for e in entries:
            twin = f"  [{e.fault}; expect {' or '.join(e.expect)}]" if e.is_twin else f"  {e.about}"
            print(f"{e.name}{twin}{'  (blocked)' if e.blocked else ''}")
        return 0
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="tripwire-corpus-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    whole = not (args.only or args.framework) or args.update
    md = args.md or (RESULTS_MD if whole else None)
    js = args.json or (RESULTS_JSON if whole else None)
    outcomes: list[Outcome] = []
    loadavg = [os.getloadavg()[0]]
    start = time.perf_counter()
    for i, entry in enumerate(entries, 1):
        print(f"[{i}/{len(entries)}] {entry.name} ...", end=" ", flush=True)
        outcome = run_in_child(entry, log_dir, args.timeout)
        outcomes.append(outcome)
        state = "crashed" if outcome.error else f"{len(outcome.findings)} finding(s)"
        print(f"{outcome.seconds:.0f} s, {state}", flush=True)
    total = time.perf_counter() - start
    loadavg.append(os.getloadavg()[0])
    rerun: list[str] = []
    if args.update and js and js.exists():
        previous = json.loads(js.read_text())
        rerun = sorted(set(previous.get("rerun", [])) | {o.name for o in outcomes})
        outcomes = merged(previous, outcomes, set(load().entries))
        total, loadavg = previous.get("total_seconds", total), previous.get("load", loadavg)
    print()
    print(text_table(outcomes))
    print(f"total wall time: {total / 60:.1f} min{' (the whole corpus, before the rerun)' if rerun else ''}; "
          f"run records and logs: {log_dir}")
    if md:
        md.write_text(markdown(outcomes, preamble=preamble(total, rerun, loadavg)))
        print(f"Markdown: {md}")
    if js:
        js.write_text(json.dumps({"total_seconds": round(total, 1), "load": loadavg, "rerun": rerun,
                                  "outcomes": [o.to_dict() for o in outcomes]}, indent=1))
        print(f"JSON: {js}")
    return 0


def render(js: Path, md: Path) -> int:
    """Print the table of a saved run and rewrite its Markdown (after the judgements changed)."""
    saved = json.loads(js.read_text())
    outcomes = [Outcome.from_dict(d) for d in saved["outcomes"]]
    print(text_table(outcomes))
    md.write_text(markdown(outcomes, preamble=preamble(saved["total_seconds"], saved.get("rerun", []),
                                                       saved.get("load"))))
    print(f"Markdown: {md}")
    return 0


def merged(previous: dict, rerun: list[Outcome], registered: set[str]) -> list[Outcome]:
    """The previous outcomes with those of ``rerun`` replaced (in the previous order; new ones at
    the end) and those of entries no longer registered dropped."""
    fresh = {o.name: o for o in rerun}
    old = [o for o in (Outcome.from_dict(d) for d in previous["outcomes"]) if o.name in registered]
    return [fresh.pop(o.name, o) for o in old] + list(fresh.values())


def preamble(total: float, rerun: list[str], load: list[float] | None = None) -> str:
    """The Markdown file's heading and method paragraph (``load``: the load average at the start and
    the end of the run)."""
    load_text = f", load average {load[0]:.1f} at the start and {load[1]:.1f} at the end" if load else ""
    again = (f" These entries were rerun afterwards with `--update` (their rows come from the rerun): "
             f"{', '.join(f'`{n}`' for n in rerun)}.") if rerun else ""
    return ("# Healthy-run corpus: results\n\n"
            f"`python benchmarks/corpus.py` on the development machine ({os.cpu_count()} CPU cores shared with other "
            f"jobs{load_text}; one thread per entry): {total / 60:.0f} min for the whole corpus.{again} "
            "Healthy runs use the default rules with `shadow: true` (the default rules' "
            "findings are what `config=None` gives; the margins come from `tripwire calibrate` on the run record); "
            "twins use `config=None`. Columns for a twin: the fault planted (and the rules expected), every default "
            "rule that fired with its first step, and whether an expected one fired.\n\n")


if __name__ == "__main__":
    sys.exit(main())
