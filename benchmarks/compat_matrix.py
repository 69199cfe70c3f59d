"""The compatibility matrix: tripwire never crashes and never changes training, on every layer
and module type of Keras and torch, model families of keras.applications / transformers / timm,
and every XGBoost objective x booster.

Each case trains a tiny model for 3 steps (4 boosting rounds) three times from identical
weights and seeds: without tripwire, with every rule at ``interval: 1``, and with the default
rule set at ``interval: 1``. It reports (a) exceptions that reached the training loop, (b)
trainings whose losses or final weights moved (tolerance in ``_compat_core.RTOL/ATOL``), (c)
findings of the default rules on these healthy models, (d) statistics that apply but were not
collected. How cases are built: ``_compat_keras.py``, ``_compat_torch.py``, ``_compat_hub.py``,
``_compat_xgb.py``; verdicts: ``_compat_core.py``.

Every suite runs in its own process (a Keras backend is fixed per process; memory is released
between suites)::

    python benchmarks/compat_matrix.py                          # everything (2.5-3 h on 2 busy cores)
    python benchmarks/compat_matrix.py --suite torch xgboost    # some suites
    python benchmarks/compat_matrix.py --quick                  # a few cases per suite (minutes)
    python benchmarks/compat_matrix.py --update-doc             # counts into docs/reliability.md

Output: a Markdown table of every case, a summary per group, ``--json PATH`` (default
``compat_matrix.json``) with every case. ``--update-doc`` stores the counts in
``tests/faults/figures.json`` (key ``compat``) and re-renders ``docs/reliability.md``.
The exit status is 1 when a case crashed, changed training or missed statistics (known
failures pending a fix excepted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from _compat_core import FAILING, Outcome, apply_known, counts, table
from _compat_known import KNOWN

SUITES = ("keras-tensorflow", "keras-jax", "keras-torch", "torch", "hub", "xgboost")
#: The layers and applications run on the JAX and torch backends of Keras (all run on TensorFlow).
KERAS_SUBSET = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SimpleRNN", "LSTM", "GRU", "ConvLSTM1D",
                "Bidirectional", "TimeDistributed", "BatchNormalization", "LayerNormalization", "MultiHeadAttention",
                "Embedding", "PReLU", "MobileNetV3Small")
QUICK = {
    "keras": ("Dense", "LSTM", "BatchNormalization", "MobileNetV3Small"),
    "torch": ("Linear", "LSTM", "BatchNorm2d", "LazyLinear", "MultiheadAttention"),
    "hub": ("transformers BertForSequenceClassification", "timm resnet10t"),
    "xgboost": ("binary:logistic gbtree", "multi:softprob dart", "reg:squarederror gblinear",
                "XGBRanker rank:ndcg"),
}


def suite_cases(suite: str, quick: bool) -> tuple[list, object]:
    """The cases of one suite and the function that runs one of them."""
    if suite.startswith("keras-"):
        import _compat_keras as ck

        cases = ck.layer_cases() + ck.application_cases()
        chosen = QUICK["keras"] if quick else (None if suite == "keras-tensorflow" else KERAS_SUBSET)
        return [c for c in cases if chosen is None or c.name in chosen], lambda c: ck.run_case(c, suite)
    if suite in ("torch", "hub"):
        import _compat_torch as ct

        ct.quiet()
        if suite == "torch":
            cases = ct.module_cases()
        else:
            import _compat_hub

            cases = _compat_hub.hub_cases()
        return [c for c in cases if not quick or c.name in QUICK[suite]], ct.run_case
    import _compat_xgb as cx

    cases = cx.train_cases() + cx.sklearn_cases()
    return [c for c in cases if not quick or c.name in QUICK["xgboost"]], cx.run_case


def child(suite: str, quick: bool, names: list[str] | None) -> None:
    """Run one suite in this process; one ``RESULT <json>`` line per case on stdout."""
    cases, run = suite_cases(suite, quick)
    for case in cases if not names else [c for c in cases if c.name in names]:
        print("RESULT " + run(case).to_json(), flush=True)


def run_suite(suite: str, quick: bool, names: list[str] | None = None,
              done: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
    """Run one suite in a fresh process; its outcomes (a dead process becomes one crash line)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONWARNINGS": "ignore"}
    if suite.startswith("keras-"):
        env["KERAS_BACKEND"] = suite.split("-", 1)[1]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", suite] + (["--quick"] if quick else [])
    cmd += ["--cases", *names] if names else []
    out: list[Outcome] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) as proc:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                outcome = apply_known(Outcome(**json.loads(line[7:])), KNOWN)
                outcome.suite = suite
                out.append(outcome)
                if done is not None:
                    done(out)
                print(f"  {suite:16} {outcome.status:8} {outcome.name} ({outcome.seconds:g} s)", file=sys.stderr,
                      flush=True)
        err = proc.stderr.read()
    if proc.returncode != 0:
        out.append(Outcome(suite, "suite", "(process)", "crash", f"exit {proc.returncode}: {err[-600:]}",
                           suite=suite))
    return out


def summary(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """``{"<framework> <group>": {status: count, "cases": n}}``."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(f"{o.framework} {o.group}", []).append(o)
    return {key: {"cases": len(items), **counts(items), "switched off": sum(1 for o in items if o.disabled)}
            for key, items in groups.items()}


def headline(outcomes: list[Outcome]) -> str:
    """One sentence with the counts that matter."""
    c = counts(outcomes)
    tested = len(outcomes) - c["n/a"] - c["skipped"]
    findings = sum(1 for o in outcomes if o.findings)
    off = sum(1 for o in outcomes if o.disabled)
    return (f"{len(outcomes)} cases ({tested} trained, {c['n/a']} not applicable, {c['skipped']} skipped): "
            f"{c['crash']} crashes, {c['changed']} changed trainings, {c['missing']} with statistics missing, "
            f"{c['known']} known failures pending a fix, {c['fixed']} fixed since listed, "
            f"{findings} with findings of the default rules, {off} with a part of tripwire switched off "
            "by its fail-open guard")


def store_in_figures(outcomes: list[Outcome], seconds: float, suites: list[str], measured: str) -> None:
    """The counts, findings and failures into figures.json (key ``compat``); the doc re-rendered."""
    sys.path.insert(0, str(ROOT / "tests" / "faults"))
    import figures

    store = figures.load_store()
    store["compat"] = {
        "measured": measured, "machine": figures.machine(), "seconds": round(seconds),
        "suites": suites, "groups": summary(outcomes), "headline": headline(outcomes),
        "findings": sorted(f"{o.framework} {o.name}: {'; '.join(o.findings)}" for o in outcomes if o.findings),
        "switched_off": sorted(f"{o.framework} {o.name}: {'; '.join(f'{k} ({v[:160]})' for k, v in o.disabled.items())}"
                               for o in outcomes if o.disabled),
        "failures": sorted(f"{o.framework} {o.name} ({o.status}{': ' + o.known if o.known else ''}): {o.detail}"
                           for o in outcomes if o.status in (*FAILING, "known", "fixed")),
    }
    figures.STORE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    figures.DOC.write_text(figures.render_doc())  # from the file as stored (its keys sorted)


def _suite_of(case: dict) -> str:
    """The suite of a case saved before outcomes carried it."""
    if case.get("suite"):
        return case["suite"]
    if case["framework"] == "torch":
        return "torch" if case["group"] == "module" else "hub"
    return case["framework"]


def merged(paths: list[str]) -> tuple[list[str], dict[str, float], list[Outcome], str]:
    """Suites, seconds per suite, outcomes and the latest time measured of earlier runs (``--json``
    files), judged again; a case of a later file replaces the same case of an earlier one (a run
    of a few ``--cases`` patches a full run), and the first file that ran a suite gives its time."""
    cases: dict[tuple[str, str, str], Outcome] = {}
    seconds: dict[str, float] = {}
    measured = ""
    for path in paths:
        saved = json.loads(Path(path).read_text())
        measured = max(measured, saved.get("measured", ""))
        for c in saved["cases"]:
            outcome = Outcome(**{**c, "suite": _suite_of(c)})
            cases[(outcome.suite, outcome.group, outcome.name)] = apply_known(outcome, KNOWN)
        for suite in saved["suites"]:
            seconds.setdefault(suite, saved.get("suite_seconds", {}).get(suite, 0))
    suites = [s for s in SUITES if s in seconds]
    order = {s: i for i, s in enumerate(suites)}
    outcomes = sorted(cases.values(), key=lambda o: order.get(o.suite, len(order)))
    return suites, {s: seconds[s] for s in suites}, outcomes, measured or time.strftime("%Y-%m-%d %H:%M")


def save(path: str, suites: list[str], measured: str, suite_seconds: dict[str, float],
         outcomes: list[Outcome]) -> None:
    """Every case so far as JSON (written after each case, so a long run leaves what it did)."""
    Path(path).write_text(json.dumps({"suites": suites, "measured": measured, "seconds": sum(suite_seconds.values()),
                                      "suite_seconds": suite_seconds, "cases": [o.__dict__ for o in outcomes]},
                                     indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", nargs="+", choices=SUITES, default=list(SUITES))
    ap.add_argument("--quick", action="store_true", help="a few cases per suite")
    ap.add_argument("--json", default="compat_matrix.json", help="where to write every case (JSON)")
    ap.add_argument("--update-doc", action="store_true", help="store the counts in figures.json, re-render the doc")
    ap.add_argument("--from-json", metavar="PATH", nargs="+", help="judge the cases of earlier --json outputs "
                    "again instead of running them (after editing the known failures; a later file's suites "
                    "replace the same suites of an earlier one)")
    ap.add_argument("--cases", nargs="+", metavar="NAME", help="only these cases (names as in the table)")
    ap.add_argument("--child", choices=SUITES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.quick, args.cases)
        return 0
    outcomes: list[Outcome] = []
    suite_seconds: dict[str, float] = {}
    measured = time.strftime("%Y-%m-%d %H:%M")
    if args.from_json:
        args.suite, suite_seconds, outcomes, measured = merged(args.from_json)
    for suite in [] if args.from_json else args.suite:
        print(f"suite {suite} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        ran = [s for s in args.suite if s in suite_seconds] + [suite]

        def progress(partial: list[Outcome], ran: list[str] = ran, start: float = start, suite: str = suite) -> None:
            save(args.json, ran, measured, {**suite_seconds, suite: round(time.perf_counter() - start)},
                 outcomes + partial)  # noqa: B023 - the outcomes so far, when it is called

        outcomes += run_suite(suite, args.quick, args.cases, progress)
        suite_seconds[suite] = round(time.perf_counter() - start)
        save(args.json, ran, measured, suite_seconds, outcomes)
    seconds = sum(suite_seconds.values())
    print(table(outcomes))
    print()
    columns = ("cases", "ok", "findings", "crash", "changed", "missing", "known", "fixed", "n/a", "skipped",
               "switched off")
    print("| group | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for key, c in summary(outcomes).items():
        print(f"| {key} | " + " | ".join(str(c[s]) for s in columns) + " |")
    print()
    print(headline(outcomes) + f"; {seconds / 60:.1f} min")
    if args.update_doc:
        store_in_figures(outcomes, seconds, args.suite, measured)
    return 1 if any(o.status in FAILING for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
