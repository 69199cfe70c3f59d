"""The figures the fault suite measures, the bound each must meet, and docs/reliability.md.

Every test of the suite reports what it measured with :func:`record` *and* asserts the bound
declared here with :func:`check`, so the doc and the tests cannot disagree about what passes.
The last measured values live in ``tests/faults/figures.json`` (committed); the tables of
docs/reliability.md are rendered from that file by :func:`render_doc`, and
``test_faults_doc.py`` fails when the doc is not exactly that rendering, when a declared
figure has no value, or when a stored value breaks its bound.

Updating the numbers:

- ``TRIPWIRE_UPDATE_FIGURES=1 pytest tests/faults``: the CI figures measured by this session
  go into figures.json and the doc is re-rendered (every session also writes what it measured
  to ``$TMPDIR/tripwire-fault-figures.json``);
- ``python tests/faults/long_run.py``: the long-run figures (50k steps, many DDP runs), same way.

Example:
    >>> FIGURES["ddp.local_fault.hangs"].passes(0), FIGURES["ddp.local_fault.hangs"].passes(1)
    (True, False)
    >>> check("ddp.local_fault.hangs", 0)
    0
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE = HERE / "figures.json"
DOC = HERE.parent.parent / "docs" / "reliability.md"
SESSION_OUT = Path(os.environ.get("TRIPWIRE_FAULT_FIGURES",
                                  Path(tempfile.gettempdir()) / "tripwire-fault-figures.json"))
ALERT_LOOP_RATIO_MAX = 2.0  # best training-loop time with a dead channel / without alerts (shared CPUs)


@dataclass(frozen=True)
class Figure:
    """One measured number: where it comes from and what it must be."""

    key: str
    item: int
    label: str
    bound: str
    passes: Callable[[float], bool]
    long: bool = False  # measured by long_run.py, not by the CI suite


def _at_most(limit: float) -> tuple[str, Callable[[float], bool]]:
    return f"≤ {limit:g}", lambda v: v <= limit


def _at_least(limit: float) -> tuple[str, Callable[[float], bool]]:
    return f"≥ {limit:g}", lambda v: v >= limit


def _zero() -> tuple[str, Callable[[float], bool]]:
    return "0", lambda v: v == 0


def _info() -> tuple[str, Callable[[float], bool]]:
    return "reported", lambda v: True


def _figures() -> dict[str, Figure]:
    out: list[Figure] = []

    def add(key: str, item: int, label: str, bound: tuple[str, Callable[[float], bool]], long: bool = False) -> None:
        out.append(Figure(key, item, label, bound[0], bound[1], long))

    for prefix, long, runs in (("ddp", False, 10), ("long.ddp", True, 50)):
        for scenario, what in (("local_fault", "only rank 1's data trips a stopping rule"),
                               ("split", "the stopping rule fires on each rank at a different sampled step"),
                               ("strict", "a user rule raises on rank 1 only, strict=True")):
            n = runs if scenario != "strict" else 2
            add(f"{prefix}.{scenario}.runs", 1, f"2-process DDP runs where {what}", _at_least(n), long)
            add(f"{prefix}.{scenario}.disagreements", 1, "runs where the ranks ended differently or not as "
                "expected", _zero(), long)
            add(f"{prefix}.{scenario}.hangs", 1, "runs that hung, or never ran after a hang (per-run watchdog "
                "or test timeout)", _zero(), long)
        add(f"{prefix}.seconds_per_run", 1, "median wall time of one DDP run (process group reused)", _info(), long)
    for channel in ("webhook_hang", "webhook_500", "webhook_refused", "smtp_down"):
        add(f"alerts.{channel}.loop_ratio", 2, f"{channel}: training-loop time / without alerts (best of 5 "
            "interleaved fits each)", _at_most(ALERT_LOOP_RATIO_MAX))
        add(f"alerts.{channel}.send_median_ms", 2, f"{channel}: median time one alert takes on the training "
            "thread (ms)", _at_most(1.0))
        add(f"alerts.{channel}.close_wait_s", 2, f"{channel}: seconds fit() spends after the loop (the wait for "
            "queued alerts at close: a failing channel is abandoned at once, a hanging delivery after 1 s)",
            _at_most(1.5))
        add(f"alerts.{channel}.lost_unreported", 2, f"{channel}: alerts neither delivered nor counted in the "
            "logged summary", _zero())
        add(f"alerts.{channel}.max_queued_over_limit", 2, f"{channel}: most alerts queued at once minus "
            "the queue limit (+1 in flight)", _at_most(0))
    add("alerts.alerts_per_run", 2, "alerts sent per run (one finding every other step)", _at_least(20))
    add("rules.fits_with_broken_rule", 3, "fits with a broken rule, non-strict (Lightning, XGBoost, Keras)",
        _at_least(7))
    add("rules.training_stopped_by_broken_rule", 3, "fits a broken rule (non-strict) crashed or cut short",
        _zero())
    add("rules.max_errors_logged_per_rule", 3, "most ERROR records logged for one broken rule", _at_most(1))
    add("rules.strict_unclear", 3, "strict=True runs not stopped by a RuleError naming the rule", _zero())
    add("configs.constructor_examples", 4, "hypothesis examples of callback constructor arguments", _at_least(200))
    add("configs.non_config_errors", 4, "examples where an exception other than ConfigError escaped", _zero())
    add("resume.finding_mismatches", 5, "findings of stop+resume that differ from an uninterrupted run", _zero())
    add("resume.record_directories", 5, "run directories written by the stopped and the resumed fit", _at_most(1))
    add("resume.rows_lost", 5, "series rows of the first fit missing after the resume", _zero())
    add("odd.cases", 6, "odd training setups run to the end", _at_least(9))
    add("odd.crashes", 6, "odd training setups that crashed", _zero())
    for prefix, long, steps in (("long_ci", False, 3000), ("long", True, 50000)):
        add(f"{prefix}.steps", 7, "optimizer steps, every rule enabled, interval 1", _at_least(steps), long)
        add(f"{prefix}.rss_slope_mib_per_1k_steps", 7, "RSS slope over the second half of the run (MiB per "
            "1k steps)", _at_most(0.5), long)
        add(f"{prefix}.record_kib_per_1k_sampled_steps", 7, "run-record size per 1k sampled steps (KiB)",
            _info(), long)
        add(f"{prefix}.record_linearity_error", 7, "largest relative deviation of the record size from a "
            "straight line through the checkpoints", _at_most(0.1), long)
    add("secrets.places_checked", 8, "places searched for the webhook token and SMTP password", _at_least(5))
    add("secrets.leaks", 8, "places where a secret appeared", _zero())
    add("secrets.unescaped_markup", 8, "hostile layer names that reached the report HTML unescaped", _zero())
    return {f.key: f for f in out}


FIGURES = _figures()
_session: dict[str, float] = {}


def check(key: str, value: float) -> float:
    """Record ``value`` for figure ``key`` and assert its bound; returns ``value``."""
    record(key, value)
    figure = FIGURES[key]
    assert figure.passes(value), f"{key} = {value:g}, expected {figure.bound}: {figure.label}"
    return value


def record(key: str, value: float) -> None:
    """Keep a measured value for the session's figures file (no bound check)."""
    if key not in FIGURES:
        raise KeyError(f"undeclared figure {key!r}; declare it in figures.py")
    _session[key] = float(value)


def tally(key: str, amount: float) -> float:
    """Add ``amount`` to a figure summed over several tests; the running total."""
    record(key, _session.get(key, 0.0) + amount)
    return _session[key]


def most(key: str, value: float) -> float:
    """Keep the largest value of a figure over several tests; the running maximum."""
    record(key, max(_session.get(key, value), value))
    return _session[key]


def session_figures() -> dict[str, float]:
    return dict(_session)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()}, {os.cpu_count()} cores, load {load:.1f}, Python {sys.version.split()[0]}"


def load_store() -> dict:
    return json.loads(STORE.read_text()) if STORE.exists() else {"ci": {}, "long": {}}


def update_store(values: dict[str, float], long: bool, info: dict[str, float] | None = None) -> dict:
    """Merge measured values (and informational numbers) into figures.json; re-render the doc."""
    store = load_store()
    part = store["long" if long else "ci"]
    part.setdefault("values", {}).update(values)
    if info is not None:
        part["info"] = info
    part["measured"] = time.strftime("%Y-%m-%d %H:%M")
    part["machine"] = machine()
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    DOC.write_text(render_doc(store))
    return store


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if float(value).is_integer() or abs(value) >= 1000 else f"{value:.3g}"


def _table(store: dict, long: bool) -> list[str]:
    part = store.get("long" if long else "ci", {})
    values = part.get("values", {})
    rows = ["| item | figure | value | bound |", "|---|---|---|---|"]
    for f in FIGURES.values():
        if f.long == long:
            rows.append(f"| {f.item} | {f.label} (`{f.key}`) | {_fmt(values.get(f.key))} | {f.bound} |")
    where = f"Last measured {part.get('measured', 'never')} on {part.get('machine', '?')}."
    info = part.get("info")
    extra = ["", "Also measured: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(info.items())) + "."] if info else []
    return [where, "", *rows, *extra]


_COMPAT_COLUMNS = ("cases", "ok", "findings", "crash", "changed", "missing", "known", "fixed", "n/a", "skipped",
                   "switched off")


def _compat(store: dict) -> list[str]:
    """The compatibility matrix section, from what ``benchmarks/compat_matrix.py`` stored."""
    part = store.get("compat")
    if not part:
        return ["Not measured yet: run `python benchmarks/compat_matrix.py --update-doc`."]
    rows = ["| group | " + " | ".join(_COMPAT_COLUMNS) + " |", "|---|" + "---|" * len(_COMPAT_COLUMNS)]
    for group, c in part.get("groups", {}).items():
        rows.append(f"| {group} | " + " | ".join(str(c.get(k, 0)) for k in _COMPAT_COLUMNS) + " |")
    where = (f"Last measured {part.get('measured', 'never')} on {part.get('machine', '?')} "
             f"({part.get('seconds', 0) / 60:.0f} min; suites: {', '.join(part.get('suites', []))}).")
    out = [where, "",
           f"**{part.get('headline', '')}.**", "", *rows, "", COMPAT_NOTES.strip()]
    for title, items in (("Crashes, changed trainings, missing statistics and known failures",
                          part.get("failures", [])),
                         ("Findings of the default rules on these healthy models (false alarms to look at)",
                          part.get("findings", [])),
                         ("Parts of tripwire switched off by the fail-open guard (training went on unchanged)",
                          part.get("switched_off", []))):
        out += ["", f"{title}:", ""] + ([f"- {item}" for item in items] or ["- none"])
    return out


def render_doc(store: dict | None = None) -> str:
    """docs/reliability.md: the fixed text of :data:`INTRO`, the two tables, the compatibility matrix."""
    store = load_store() if store is None else store
    return "\n".join([INTRO.strip(), "", "## CI figures", "", *_table(store, False), "",
                      "## Long-run figures", "", *_table(store, True), "",
                      "## Compatibility matrix", "", *_compat(store), "", OUTRO.strip(), ""])


INTRO = """
# Reliability under faults

tripwire runs inside other people's training jobs, so it must never be the reason a job hangs,
crashes, slows down or loses data. `tests/faults/` injects faults into real training runs
(Lightning on CPU, XGBoost, Keras) and measures what happens; this page shows the figures.

**How this page is made.** It is generated, do not edit it by hand. Each test of the suite
asserts the bound in the tables below (declared once, in `tests/faults/figures.py`) and
records what it measured. `TRIPWIRE_UPDATE_FIGURES=1 pytest tests/faults` stores the
measured CI figures in `tests/faults/figures.json` and re-renders this page;
`python tests/faults/long_run.py` does the same for the long-run figures. A plain
`pytest tests/faults` (the CI command) checks that this page is exactly the rendering of
figures.json and that every stored value meets its bound; what a session measured is
written to `$TMPDIR/tripwire-fault-figures.json`.

Commands:

```
.venv/bin/pytest tests/faults -q -p no:cacheprovider          # CI part, about 2 minutes on 2 cores
.venv/bin/python tests/faults/long_run.py                      # 50k steps + 50 DDP runs per scenario
.venv/bin/python tests/faults/long_run.py --steps 5000 --ddp-runs 10 --no-update   # a quicker look
```

| item | what is injected | test |
|---|---|---|
| 1 | 2-process DDP (gloo): one rank's data goes bad (labels collapse / NaN inputs) at a different step each run; a rule that fires on each rank at a different sampled step (a rank-local `tripwire.observe` series); a user rule raising on one rank with `strict=True` | `test_faults_ddp.py` |
| 2 | alert channels that hang, answer 500, refuse connections; SMTP down; real Lightning fits with a finding every other step, interleaved with fits without alerts; a hanging webhook under Keras | `test_faults_alerts.py`, `test_faults_keras.py` |
| 3 | user rules (`type: module:Class`) that raise in `check`, in `needs`, return None, fire with evidence or keep state JSON cannot hold, need a statistic that does not exist (refused when the callback is built); Lightning, XGBoost and Keras; `strict=True` | `test_faults_rules.py`, `test_faults_keras.py` |
| 4 | hypothesis-generated constructor arguments of `LightningTripwire` / `XGBoostTripwire` (configs, `stop_on`, `interval`, `log_dir`, `strict`, `run_name`); YAML text and dict fuzzing is in `tests/test_config_fuzz.py` | `test_faults_configs.py` |
| 5 | a Lightning run stopped mid-way with a checkpoint and resumed vs. the same run uninterrupted | `test_faults_resume.py` |
| 6 | NaN/Inf inputs, batch size 1, no validation batches, integer inputs, no monitored activations, frozen backbone, no trainable parameters, bf16 parameters | `test_faults_odd.py` |
| 7 | every rule enabled, a sample every step, RSS and record size along the run | `test_faults_long.py`, `long_run.py` |
| 8 | a webhook URL with a token and an SMTP password in the environment, both channels failing; layers named with HTML/script | `test_faults_secrets.py` |
"""  # noqa: E501 - a Markdown table row is one line

COMPAT_NOTES = """
Each case trains a tiny model for 3 steps (XGBoost: 4 rounds) without tripwire, with every
rule at `interval: 1` and with the default rules at `interval: 1`, from the same weights and
seed. **crash**: an exception reached the training loop with tripwire and not without it;
**changed**: a per-step loss or a final weight of the every-rule fit differs from the plain fit
beyond `rtol=1e-4, atol=1e-6`; **missing**: a trainable parameter absent from the gradient
statistics, an activation (ReLU/tanh/sigmoid family) neither probed nor named in a warning, or
(XGBoost) no loss / tree statistics; **findings**: the default rules reported something on the
healthy model; **switched off**: a part of tripwire failed and its fail-open guard turned it
off (training unchanged, the rules that need it get no values); **known**: a failure listed as
pending a fix in tripwire (`KNOWN` in the case module), **fixed**: listed but passing now;
**n/a**: the framework cannot train the case in such a model (the reason is given, or the plain
fit failed by itself); **skipped**: a library is missing on the measuring machine. Every case:
`python benchmarks/compat_matrix.py` (see `benchmarks/README.md`); a subset runs in CI
(`tests/faults/test_compat_matrix.py`).
"""

OUTRO = """
## Notes

- Alert time ratios compare the *training loop* (from `on_train_start` to `on_train_end`) of
  5 rounds of interleaved fits, the best of each variant, against fits whose rule fires as
  often but has no alert channel. On the shared 2-core machine the same 120-step loop took
  0.15 to 1.2 s from one fit to the next, so medians of 5 swung by 2.7x while the minimum,
  which noise can only raise, stayed within 1.5x; the bound is 2x. A channel that held up
  the loop would slow every round. `send_median_ms`, the time each alert takes on the
  training thread, is the precise form of the same figure: microseconds (a lock and a deque),
  where delivering on that thread would cost the hanging webhook's 5 s timeout and the
  failing ones their retries and backoff (1.5 s) per alert. At the end of `fit()` each queued
  alert gets one attempt, without retries; a channel whose last delivery failed is abandoned
  at once, one whose delivery has been in flight for 1 s is abandoned then, and the whole wait
  is capped at 5 s (`close_wait_s`, reported separately; it was 5 s for every failing webhook
  before this rule). Abandoned alerts are counted as unsent and logged with the reason.
- The DDP runs reuse one process group (the two processes are started once) so that many runs
  fit the CI budget; every run builds a new Trainer, model and callback. A hang is caught by a
  per-run watchdog (faulthandler prints every stack) and by the test's own timeout.
- A rank-local statistic (`tripwire.observe` under DDP) is the only way rules can disagree
  across ranks: every built-in statistic is reduced across ranks before the rules see it.
- The suite runs torch with one intra-op thread: on a shared 2-core machine its spinning
  threads made a 0.3 s fit take 2-10 s and the timings meaningless.

## What the suite found (fixed)

- DDP, `strict=True`: a rule failing on one rank only raised there while the other rank waited
  in its next collective until the process group timed out (30 min by default); the failure
  is now agreed across ranks and every rank raises `RuleError`. A rank stopped by another
  rank's finding had `stopped_by = None`; it now gets a stand-in finding.
- A user rule whose `check` returns None, or fires with evidence JSON cannot hold, crashed
  training (the latter only with the run record on, the default); a rule state JSON cannot
  hold crashed every checkpoint. All three now disable the rule with one logged error.
- Resume: the run name was not in the checkpoint, so a resumed run started a new record
  directory; `unchanged_tensor` fired one sample late after a resume (no previous weights);
  a finding fired between the checkpoint and the crash was listed twice by the record reader.
- Batch size 1 made `dead_relu` fire on healthy layers (one sample cannot show a dead unit;
  per-unit activation shares now need 8 samples per call); a model with no trainable
  parameter crashed the collector.
- A dead webhook added the whole 5 s close limit to the end of every fit: queued alerts kept
  retrying with backoff at close. Close now gives each alert one attempt and abandons a
  failing or hanging channel (see the notes). A user rule needing a statistic no collector
  provides idled silently; it is now a `ConfigError` naming the rule and the statistic.
- Keyword arguments bypassed validation: `interval=0` crashed the first batch, `interval=2.5`
  or `"7"` sampled oddly or crashed, `stop_on="dead_relu"` was read letter by letter,
  `stop_on=None` raised TypeError. They are now validated with located `ConfigError`s.
"""


if __name__ == "__main__":
    if "--render" in sys.argv:
        DOC.write_text(render_doc())
        print(f"wrote {DOC}")
    else:
        print(__doc__)
