"""Quantities rules compute from the recorded series, recomputed so the report can plot them
with the rule's threshold: the overfit gap, the token share, the class-count ratio, a layer's
gradient norm relative to the largest, per-class recall, the latest feature importance, input
moments.

Each function takes the run and the findings of one rule and returns lines (empty when the
series are missing). Where a rule keeps a running total the function accumulates the same way,
so the line takes the finding's value at the finding's step and the threshold lands on it.

Example:
    >>> import tempfile
    >>> from tripwire.record import Run, RunRecord
    >>> from tripwire.stats import Sample
    >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="r")
    >>> for step, counts in [(10, {"a": 90.0, "b": 10.0}), (20, {"a": 90.0, "b": 0.0})]:
    ...     rec.add_sample(Sample(step, 0, {"label_count": counts}))
    >>> rec.close()
    >>> [line.values.tolist() for line in class_ratio(Run(rec.directory), [])]
    [[9.0, 18.0]]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tripwire.finding import Finding
from tripwire.record import Run
from tripwire.report.panel import Line, aligned, natural_key

MAX_BARS = 30
_EPS = 1e-12


def finding_subjects(finding: Finding) -> list[str | None]:
    """Every subject a finding names: a merged finding lists them all in ``evidence['subjects']``."""
    named = finding.evidence.get("subjects") if isinstance(finding.evidence, dict) else None
    if isinstance(named, dict) and named:
        return [str(s) for s in named]
    return [finding.subject]


def _named(findings: Sequence[Finding]) -> list[str]:
    out: list[str] = []
    for f in findings:
        out += [s for s in finding_subjects(f) if s is not None and s not in out]
    return out


def _first(run: Run, stat: str) -> str | None:
    """The recorded name of a statistic, with whatever options it was collected with."""
    return next((n for n in run.names() if n == stat or n.startswith(stat + "[")), None)


def _per_subject(run: Run, name: str, subjects: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    steps, grid = aligned([run.series(name, s) for s in subjects])
    return steps, np.where(np.isfinite(grid), grid, np.nan)


def rule_params(run: Run, finding: Finding) -> Any:
    """The parameters the finding's rule ran with (the recorded config, defaults filled in), or
    None for a rule that cannot be resolved here (a user's rule whose module is not importable)."""
    from tripwire.registry import rule_class

    entry = (run.config.get("rules") or {}).get(finding.rule) or {}
    try:
        return rule_class(entry.get("type") or finding.kind).Params(**(entry.get("params") or {}))
    except Exception:  # noqa: BLE001 - a record from another version or another machine: plot without it
        return None


def overfit_gap(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """(val - train) / max(|train|, floor x initial) at each validation, as the ``overfit`` rule
    computes it: train is the mean loss since the previous validation (or the mean before, when
    none arrived in between), initial the first training loss, floor the rule's parameter."""
    ts, tv = run.series("loss")
    vs, vv = run.series("val_loss")
    ok = np.isfinite(tv)
    params = rule_params(run, findings[0]) if findings else None
    floor = float(getattr(params, "floor", 0.0)) * (abs(float(tv[ok][0])) if ok.any() else 0.0)
    steps, gaps, prev, train = [], [], -np.inf, None
    for s, v in zip(vs, vv):
        window = (ts > prev) & (ts <= s) & ok
        prev = s
        if window.any():
            train = float(tv[window].mean())
        if train is not None and np.isfinite(v):
            steps.append(s)
            gaps.append((v - train) / max(abs(train), floor, _EPS))
    if not steps:
        return []
    label = f"(val_loss − loss) / max(loss, {floor:.3g})" if floor > 0 else "(val_loss − loss) / loss"
    return [Line(label, np.asarray(steps, dtype=np.int64), np.asarray(gaps, dtype=float))]


def loss_vs_start(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """The mean training loss of each ``window`` of steps over the mean of its first
    ``initial_samples`` samples: what ``underfit`` compares with ``ratio``, windowed by the rule's
    own bookkeeping."""
    from tripwire.rules._loss_history import add_to_window, new_window

    params = rule_params(run, findings[0]) if findings else None
    width, first = int(getattr(params, "window", 200)), int(getattr(params, "initial_samples", 3))
    steps, values = run.series("loss")
    ok = np.isfinite(values)
    if not ok.any() or float(values[ok][:first].mean()) == 0:
        return []
    initial = float(values[ok][:first].mean())
    window, ends, means = new_window(0), [], []
    for step, value in zip(steps[ok].tolist(), values[ok].tolist()):
        closed = add_to_window(window, step, value, width)
        if closed is not None:
            ends.append(step)
            means.append(closed[1] / initial)
    return [Line(f"mean loss per {width} steps / initial loss", np.asarray(ends, dtype=np.int64),
                 np.asarray(means, dtype=float))] if ends else []


def window_drop(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """The relative drop of the mean training loss from one ``window`` of steps to the next, after
    ``warmup``: what ``loss_not_decreasing`` compares with ``min_delta``, windowed by the rule's
    own bookkeeping."""
    from tripwire.rules._loss_history import add_to_window, new_window, relative_drop

    params = rule_params(run, findings[0]) if findings else None
    width, warmup = int(getattr(params, "window", 200)), int(getattr(params, "warmup", 100))
    steps, values = run.series("loss")
    ok = np.isfinite(values)
    window, ends, drops = new_window(warmup), [], []
    for step, value in zip(steps[ok].tolist(), values[ok].tolist()):
        closed = add_to_window(window, step, value, width)
        if closed is not None and closed[0] is not None:
            ends.append(step)
            drops.append(relative_drop(*closed))
    return [Line(f"drop of the mean loss per {width} steps", np.asarray(ends, dtype=np.int64),
                 np.asarray(drops, dtype=float))] if ends else []


def token_share(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Share of the watched token among all integer inputs seen so far (as ``token_ratio`` sums them)."""
    count_name = _first(run, "token_count")
    if count_name is None:
        return []
    steps, grid = aligned([run.series(count_name), run.series("token_total")])
    both = np.isfinite(grid).all(axis=0)
    if not both.any():
        return []
    count, total = np.cumsum(grid[0, both]), np.cumsum(grid[1, both])
    with np.errstate(divide="ignore", invalid="ignore"):
        return [Line(f"{count_name} / token_total (cumulative)", steps[both], count / total)]


def class_ratio(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Largest over smallest class count among the labels seen so far (as ``class_imbalance``)."""
    classes = [s for s in run.subjects("label_count") if s is not None]
    if len(classes) < 2:
        return []
    steps, grid = _per_subject(run, "label_count", classes)
    seen = np.cumsum(np.nan_to_num(grid, nan=0.0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = seen.max(axis=0) / seen.min(axis=0)
    return [Line("largest / smallest class count", steps, ratio)]


def relative_grad_norm(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Each named parameter's gradient norm over the largest one at the same step
    (``vanishing_gradient`` compares this with ``ratio``)."""
    subjects = [s for s in run.subjects("grad_norm") if s is not None]
    named = [s for s in _named(findings) if s in subjects]
    if not named:
        return []
    steps, grid = _per_subject(run, "grad_norm", subjects)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where no parameter had a finite norm
        top = np.nanmax(grid, axis=0)
        top = np.where(top > 0, top, np.nan)
        return [Line(s, steps, grid[subjects.index(s)] / top, series="grad_norm") for s in named]


def class_recall(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Per named class: recall, and the largest share predicted as one other class, at each
    validation (``classifier_confusion`` compares these with ``min_diag`` and ``max_off_diag``)."""
    pairs = [s for s in run.subjects("confusion") if s is not None and "," in s]
    classes = _named(findings) or sorted({p.partition(",")[0] for p in pairs})[:5]
    lines = []
    for t in classes:
        row = [p for p in pairs if p.partition(",")[0] == t]
        if not row:
            continue
        steps, grid = _per_subject(run, "confusion", row)
        grid = np.nan_to_num(grid, nan=0.0)
        n = grid.sum(axis=0)
        diag = grid[row.index(f"{t},{t}")] if f"{t},{t}" in row else np.zeros(len(steps))
        off = np.delete(grid, row.index(f"{t},{t}"), axis=0) if f"{t},{t}" in row else grid
        worst = off.max(axis=0) if len(off) else np.zeros(len(steps))
        with np.errstate(divide="ignore", invalid="ignore"):
            lines += [Line(f"recall · class {t}", steps[n > 0], (diag / n)[n > 0]),
                      Line(f"largest share mistaken for one class · class {t}", steps[n > 0], (worst / n)[n > 0])]
    return lines


def latest_importance(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Bars: each feature's normalized gain at the last round, largest first."""
    features = [s for s in run.subjects("feature_importance") if s is not None]
    if not features:
        return []
    steps, grid = _per_subject(run, "feature_importance", features)
    last = grid[:, -1]
    total = np.nansum(last)
    if not total > 0:
        return []
    share = np.nan_to_num(last, nan=0.0)
    shown = sorted(range(len(features)), key=lambda i: (-share[i], natural_key(features[i])))[:MAX_BARS]
    label = f"normalized gain at round {steps[-1]}" + (f" (top {MAX_BARS} of {len(features)})"
                                                       if len(features) > MAX_BARS else "")
    return [Line(label, np.zeros(len(shown), dtype=np.int64), np.nan_to_num(last[shown] / total, nan=0.0),
                 categories=[features[i] for i in shown])]


def input_abs_mean(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Bars: each input feature's |mean| over the whole run (see :func:`input_moments`)."""
    return input_moments(run, findings)[:1]


def input_std(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Bars: each input feature's std over the whole run (see :func:`input_moments`)."""
    return input_moments(run, findings)[1:]


def mean_limit(run: Run, findings: Sequence[Finding]) -> list[tuple[float, str]]:
    """``not_normalized``'s limit on |mean|, as it ran."""
    params = rule_params(run, findings[0]) if findings else None
    return [] if params is None else [(float(params.threshold_mean), f"|mean| limit {params.threshold_mean:g}")]


def std_limits(run: Run, findings: Sequence[Finding]) -> list[tuple[float, str]]:
    """``not_normalized``'s acceptable std range, as it ran."""
    params = rule_params(run, findings[0]) if findings else None
    if params is None:
        return []
    low, high = params.std_range
    return [(float(low), f"std lower limit {low:g}"), (float(high), f"std upper limit {high:g}")]


def input_moments(run: Run, findings: Sequence[Finding]) -> list[Line]:
    """Bars: each input feature's |mean| and std over the whole run, from the summed moments
    (as ``not_normalized`` accumulates them); the features the finding named come first."""
    features = [s for s in run.subjects("input_count") if s is not None]
    if not features:
        return []
    sums = {}
    for stat in ("input_count", "input_sum", "input_sumsq"):
        _, grid = _per_subject(run, stat, features)
        sums[stat] = np.nansum(grid, axis=1) if grid.size else np.zeros(len(features))
    count = np.where(sums["input_count"] > 0, sums["input_count"], np.nan)
    mean = sums["input_sum"] / count
    std = np.sqrt(np.maximum(sums["input_sumsq"] / count - mean ** 2, 0.0))
    named = [f.get("feature") for x in findings for f in (x.evidence.get("features") or []) if isinstance(f, dict)]
    score = np.nan_to_num(np.maximum(np.abs(mean), std), nan=0.0)
    order = [features.index(f) for f in dict.fromkeys(named) if f in features]
    order += [i for i in np.argsort(-score, kind="stable") if i not in order]
    shown = order[:MAX_BARS]
    names = [features[i] for i in shown]
    zeros = np.zeros(len(shown), dtype=np.int64)
    return [Line("|mean|", zeros, np.abs(mean[shown]), categories=names),
            Line("std", zeros, std[shown], categories=names)]

