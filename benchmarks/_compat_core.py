"""The framework-free half of the compatibility matrix: configs, verdicts, the table.

Each case trains one tiny model three times from identical weights with the same seed: plainly,
with every rule at ``interval: 1`` and with the default rule set (also at ``interval: 1``, so its
rules see every step). :func:`judge` turns the three runs into one :class:`Outcome`:

(a) ``crash``: an exception reached the training loop with tripwire and not without it
    (an exception of the plain run makes the case ``n/a``: the framework itself refuses it);
(b) ``changed``: losses or final weights of the every-rule run differ from the plain run by
    more than :data:`RTOL` / :data:`ATOL` (see :func:`differs`);
(c) ``findings``: what the default rule set reported on this healthy model (a false alarm to
    look at; with 2-4 steps most rules cannot fire);
(d) ``missing``: statistics that apply but were not collected (a trainable parameter absent from
    the gradient statistics, an activation neither probed nor named in a warning).

A case listed in ``_compat_known.KNOWN`` (a failure found by the matrix, pending a fix in
tripwire) that still fails is ``known`` (:func:`apply_known`); one that passes is reported
``fixed`` so that the entry can go.

Example:
    >>> plain = Run(losses=[1.0, 0.5], weights=[[1.0, 2.0]])
    >>> differs(plain, Run(losses=[1.0, 0.5], weights=[[1.0, 2.0 + 1e-9]]))
    >>> differs(plain, Run(losses=[1.0, 0.6], weights=[[1.0, 2.0]]))
    'loss at step 2: 0.5 vs 0.6'
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Float noise allowed between the plain and the instrumented fit, relative and absolute, on
#: every per-step loss and every final weight element (numpy.allclose semantics). Both fits
#: run the same ops on the same data from the same weights on one CPU thread, so they agree
#: bit for bit where the instrumented step is the same compiled program; where it is another
#: program (the statistics fused in), the compiler may round differently, and three steps
#: through a deep network with BatchNorm grow that to ~1e-6 relative. The fits use SGD with
#: momentum (optimizer state, linear in the gradient): Adam's first steps are ~lr * sign(g),
#: which turns rounding noise in a near-zero gradient into a full +-lr step (MobileNetV3 on
#: JAX moved weights by 0.015 that way), hiding real changes among false ones.
RTOL, ATOL = 1e-4, 1e-6
#: Where that is exceeded: how many times the divergence one float32 ulp on the initial weights
#: causes is still float noise (see :func:`differs`).
NOISE_FACTOR = 10.0

FAILING = ("crash", "changed", "missing")
STATUSES = ("ok", "findings", "crash", "changed", "missing", "known", "fixed", "n/a", "skipped")


def every_rule_config(framework: str, interval: int = 1) -> dict[str, Any]:
    """Every rule type that runs under ``framework``, the opt-in ones included; ``all_zero`` and
    ``low_variance`` on weights, gradients and activations."""
    from tripwire.registry import builtin_rules

    rules: dict[str, Any] = {}
    for kind, cls in sorted(builtin_rules().items()):
        if framework not in cls.frameworks:
            continue
        rules[kind] = {}
        if "on" in cls.Params.model_fields:
            for on in ("gradients", "activations"):  # "weights" is the rule's default, above
                rules[f"{kind}_{on}"] = {"type": kind, "on": on}
    if "low_variance_gradients" in rules:
        rules["low_variance_gradients"]["min"] = 1e-16  # no default limit for gradients
    return {"interval": interval, "rules": rules, "log_dir": None}


def default_config(interval: int = 1) -> dict[str, Any]:
    """The built-in default rule set, sampled every ``interval`` steps."""
    return {"interval": interval, "log_dir": None}


@dataclass
class Run:
    """What one fit produced."""

    losses: list[float] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)  # arrays, in a fixed order
    error: str | None = None
    findings: list[str] = field(default_factory=list)  # "rule: subject"
    disabled: dict[str, str] = field(default_factory=dict)  # parts the fail-open guard switched off
    missing: list[str] = field(default_factory=list)  # statistics that apply but were not collected
    seconds: float = 0.0


@dataclass
class Outcome:
    """The verdict of one case; ``status`` is one of :data:`STATUSES`."""

    framework: str
    group: str
    name: str
    status: str
    detail: str = ""
    findings: list[str] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    raw: str = ""  # the status before the known failures were applied
    known: str = ""  # why the case is listed as a known failure
    suite: str = ""  # the runner's suite (one process) that ran it

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def differs(plain: Run, other: Run, rtol: float = RTOL, atol: float = ATOL, noise: Run | None = None) -> str | None:
    """Where ``other`` left ``plain``'s training (losses, then weights), or None within tolerance.

    ``noise``: the plain fit again from weights moved by one float32 ulp. Where rounding noise
    grows along the steps (a deep network whose loss climbs), a difference up to
    :data:`NOISE_FACTOR` times the one that ulp made is float noise too.
    """
    if len(plain.losses) != len(other.losses):
        return f"{len(other.losses)} steps instead of {len(plain.losses)}"

    def beyond(a: np.ndarray, b: np.ndarray, n: np.ndarray | None) -> bool:
        if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            return False
        return n is None or float(np.nanmax(np.abs(a - b))) > NOISE_FACTOR * float(np.nanmax(np.abs(a - n)))

    pairs = [(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
             for a, b in zip(plain.losses, other.losses)]
    ref = noise.losses if noise is not None and len(noise.losses) == len(plain.losses) else [None] * len(pairs)
    for i, ((a, b), n) in enumerate(zip(pairs, ref)):
        if beyond(a, b, None if n is None else np.asarray(n, dtype=np.float64)):
            return f"loss at step {i + 1}: {float(a):.9g} vs {float(b):.9g}" + _noted(a, n)
    if len(plain.weights) != len(other.weights):
        return f"{len(other.weights)} weight tensors instead of {len(plain.weights)}"
    ref_w = noise.weights if noise is not None and len(noise.weights) == len(plain.weights) else [None] * len(pairs)
    for i, (a, b, n) in enumerate(zip(plain.weights, other.weights, ref_w)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return f"weight {i}: shape {b.shape} instead of {a.shape}"
        if beyond(a, b, None if n is None else np.asarray(n, dtype=np.float64)):
            return f"weight {i}: largest difference {float(np.nanmax(np.abs(a - b))):.3g}" + _noted(a, n)
    return None


def _noted(a: Any, n: Any) -> str:
    if n is None:
        return ""
    moved = float(np.nanmax(np.abs(np.asarray(a, np.float64) - np.asarray(n, np.float64))))
    return f" (one ulp moved it by {moved:.3g})"


def _noted_run(plain: Run, noise: Run, where: str) -> str:
    """How far one ulp moved the loss at the step named in ``where`` (``loss at step N: ...``)."""
    if where.startswith("loss at step "):
        i = int(where.split()[3].rstrip(":")) - 1
        return f" (one ulp on the initial weights moved it to {noise.losses[i]:.9g})"
    return ""


def nudged(weights: list) -> list:
    """``weights`` with every float element moved by one float32 ulp, up or down at random (seeded)."""
    rng = np.random.default_rng(1)
    out = []
    for w in weights:
        w = np.asarray(w)
        if w.dtype.kind == "f" and w.size:
            away = np.where(rng.random(w.shape) < 0.5, np.inf, -np.inf).astype(w.dtype)
            w = np.nextafter(w, away)
        out.append(w)
    return out


def judge(framework: str, group: str, name: str, plain: Run, every: Run | None, default: Run | None,
          noise: Run | None = None) -> Outcome:
    """One case's verdict from its plain, every-rule and default-rule runs (``noise``: see :func:`differs`)."""
    seconds = plain.seconds + (every.seconds if every else 0.0) + (default.seconds if default else 0.0)
    out = Outcome(framework, group, name, "ok", seconds=round(seconds, 2))
    if plain.error is not None:
        out.status, out.detail = "n/a", f"fails without tripwire: {plain.error}"
        return out
    problems: list[tuple[str, str]] = []
    for label, run in (("every rule", every), ("default rules", default)):
        if run is not None and run.error is not None:
            problems.append(("crash", f"{label}: {run.error}"))
    if every is not None and every.error is None:
        reference = noise if noise is not None and noise.error is None else None
        changed = differs(plain, every, noise=reference)
        if changed:
            problems.append(("changed", changed))
        elif reference is not None:
            strict = differs(plain, every)
            out.detail = f"within float noise: {strict}{_noted_run(plain, reference, strict)}" if strict else ""
        if every.missing:
            problems.append(("missing", "; ".join(every.missing)))
    for run in (every, default):
        if run is not None:
            out.disabled.update(run.disabled)
    if default is not None:
        out.findings = list(default.findings)
    if problems:
        out.status, out.detail = problems[0][0], "; ".join(f"{k}: {v}" for k, v in problems)
    elif out.findings:
        out.status, out.detail = "findings", ", ".join(out.findings)
    elif out.disabled:
        out.detail = "; ".join(x for x in (out.detail, "switched off: " + "; ".join(out.disabled)) if x)
    return out


def apply_known(outcome: Outcome, known: dict[str, str]) -> Outcome:
    """``known`` or ``fixed`` for a case listed in ``known`` (``{"keras:LSTM": why, ...}``, keyed by
    the framework's first word and the case name); other outcomes unchanged."""
    why = known.get(f"{outcome.framework.split('-')[0]}:{outcome.name}")
    outcome.raw = outcome.raw or outcome.status
    outcome.status, outcome.known = outcome.raw, ""
    if why is None or outcome.raw in ("n/a", "skipped"):
        return outcome
    outcome.status, outcome.known = ("known" if outcome.raw in FAILING else "fixed"), why
    return outcome


def timed(fn: Callable[[], Run]) -> Run:
    """``fn()`` with its wall time; an exception becomes ``Run(error=...)``."""
    start = time.perf_counter()
    try:
        run = fn()
    except Exception as exc:  # noqa: BLE001 - what reached the user is the verdict
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        run = Run(error=f"{type(exc).__name__}: {message}{raised_in_tripwire(exc)}")
    run.seconds = time.perf_counter() - start
    return run


def raised_in_tripwire(exc: BaseException) -> str:
    """`` (in tripwire/<file>:<line> <function>)``: the innermost tripwire frame of the traceback."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = frame.filename.replace("\\", "/")
        if "/tripwire/" in path and "/benchmarks/" not in path:
            where = f" (in tripwire/{path.rsplit('/tripwire/', 1)[1]}:{frame.lineno} {frame.name})"
    return where


class Warnings(logging.Handler):
    """Collects the ``tripwire`` logger's warnings of one fit (``with Warnings() as w: ...``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Warnings:
        logging.getLogger("tripwire").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tripwire").removeHandler(self)

    def mention(self, name: str) -> bool:
        return any(f"'{name}'" in m or f" {name} " in m for m in self.messages)


def findings_of(callback: Any) -> list[str]:
    """``rule: subject`` of every finding of a callback."""
    return [f"{f.rule}: {f.subject}" if f.subject else f.rule for f in callback.findings]


def keep_samples(monitor: Any, samples: list | None = None) -> list:
    """Every :class:`tripwire.stats.Sample` ``monitor`` processes from now on, in order (appended
    to ``samples`` when given)."""
    samples = [] if samples is None else samples
    process = monitor.process

    def keep(sample):
        samples.append(sample)
        return process(sample)

    monitor.process = keep
    return samples


def first_with(samples: Iterable, key: str) -> dict:
    """The series ``key`` of the first sample that has it (``{}`` when none)."""
    return next((s.stats[key] for s in samples if key in s.stats), {})


def missing_params(samples: list, names: Iterable[str]) -> list[str]:
    """Trainable parameters absent from the gradient statistics of the first sample with them."""
    grads = first_with(samples, "grad_norm")
    if not grads:
        return ["no gradient statistics at all"]
    seen = {str(k).split("#")[0] for k in grads}
    lost = [n for n in names if n not in seen]
    return [f"gradient statistics lack {', '.join(lost[:4])}{' ...' if len(lost) > 4 else ''}"] if lost else []


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    """``{status: number of cases}`` (every status, zeros included)."""
    out = dict.fromkeys(STATUSES, 0)
    for o in outcomes:
        out[o.status] += 1
    return out


def table(outcomes: list[Outcome]) -> str:
    """A Markdown table of every case."""
    rows = ["| framework | group | case | status | seconds | detail |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        detail = o.detail.replace("|", "/").replace("\n", " ")
        if o.status == "fixed":
            detail = f"passes now: remove it from the known failures ({o.known}) {detail}"
        rows.append(f"| {o.framework} | {o.group} | {o.name} | {o.status} | {o.seconds:g} | {detail[:300]} |")
    return "\n".join(rows)
