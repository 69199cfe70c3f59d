"""Which recorded series lie behind a rule's findings, and where its threshold belongs.

Each built-in rule kind maps to panels of statistics (``dead_relu`` -> ``act_dead_frac*`` of the
layers it named; ``overfit`` -> the losses plus the gap ratio it compares with its threshold).
A kind not in the table (a user's rule) gets the series of the subjects it named, or the
run-wide series whose value at the finding's step equals the finding's value. The threshold
is drawn on the panel whose line takes the finding's value at the finding's step, so it lands
on the right scale even when a rule has two conditions (``vanishing_gradient``: an absolute
mean |g|, or a norm relative to the largest layer's).

Example:
    >>> import tempfile
    >>> from tripwire.finding import Finding
    >>> from tripwire.record import Run, RunRecord
    >>> from tripwire.stats import Sample
    >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="r")
    >>> for step, frac in [(10, 0.1), (20, 0.9)]:
    ...     rec.add_sample(Sample(step, 0, {"act_dead_frac[inactive_below=0.01]": {"fc1": frac}}))
    >>> rec.close()
    >>> f = Finding("dead_relu", "dead_relu", 20, 0, "warning", "fc1", 0.9, 0.5, "fc1 is dead", "lower the LR")
    >>> [(p.title, [ln.label for ln in p.lines], p.threshold) for p in panels_for([f], Run(rec.directory))]
    [('dead unit fraction · act_dead_frac[inactive_below=0.01]', ['fc1'], 0.5)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tripwire.finding import Finding
from tripwire.record import Run
from tripwire.report import derived
from tripwire.report.derived import finding_subjects
from tripwire.report.panel import Line, Panel, natural_key

MAX_SUBJECTS = 10  # lines per panel: the subjects a finding named first, then others for context
_MAX_GENERIC_PANELS = 4


@dataclass(frozen=True)
class Spec:
    """A panel to build: the statistics it shows (a series matches ``stat`` or ``stat[options]``),
    or a ``derive`` function of (run, findings); ``threshold`` draws the finding's threshold here
    even when no plotted value equals the finding's value; ``bounds`` gives the rule's other
    limits on this panel's scale, as (value, label)."""

    title: str
    stats: tuple[str, ...] = ()
    log_y: bool = False
    derive: Callable[[Run, Sequence[Finding]], list[Line]] | None = None
    threshold: bool = False
    bounds: Callable[[Run, Sequence[Finding]], list[tuple[float, str]]] | None = None


_LOSSES = Spec("loss", ("loss", "val_loss"))

#: kind -> panels. Statistic names are keys of :data:`tripwire.stats.CATALOGUE`.
SPECS: dict[str, tuple[Spec, ...]] = {
    "nonfinite": (Spec("non-finite flags", ("loss_nonfinite", "grad_nonfinite", "weight_nonfinite")), _LOSSES),
    "loss_not_decreasing": (_LOSSES, Spec("relative drop between windows", derive=derived.window_drop,
                                          threshold=True)),
    "underfit": (_LOSSES, Spec("loss relative to its start", derive=derived.loss_vs_start, threshold=True)),
    "overfit": (_LOSSES, Spec("generalization gap", derive=derived.overfit_gap, threshold=True)),
    "overtraining": (_LOSSES,),
    "vanishing_gradient": (Spec("mean |gradient|", ("grad_abs_mean",), log_y=True),
                           Spec("gradient norm / largest layer's", derive=derived.relative_grad_norm, log_y=True),
                           Spec("gradient norm", ("grad_norm",), log_y=True)),
    "exploding_gradient": (Spec("global gradient norm", ("grad_global_norm",), log_y=True, threshold=True),),
    "small_updates": (Spec("update ratio ‖Δw‖/‖w‖", ("update_ratio",), log_y=True, threshold=True),),
    "unchanged_tensor": (Spec("unchanged since the previous sample (1) or not (0)", ("weight_unchanged",)),),
    "poor_initialization": (Spec("initial weight gain std·√fan_in", ("init_weight_gain",)),
                            Spec("identical incoming-weight rows", ("init_identical_rows",))),
    "dead_relu": (Spec("dead unit fraction", ("act_dead_frac",), threshold=True),),
    "tanh_saturation": (Spec("saturated unit fraction", ("act_tanh_sat_frac",), threshold=True),),
    "sigmoid_saturation": (Spec("saturated unit fraction", ("act_sigmoid_sat_frac",), threshold=True),),
    "all_zero": (Spec("share of exact zeros", ("grad_zero_frac", "weight_zero_frac", "act_zero_frac"),
                      threshold=True),),
    "low_variance": (Spec("variance", ("grad_var", "weight_var", "act_var"), log_y=True),),
    "class_imbalance": (Spec("class imbalance", derive=derived.class_ratio, threshold=True),
                        Spec("labels per class per sample", ("label_count",))),
    "token_ratio": (Spec("token share", derive=derived.token_share, threshold=True),),
    "not_normalized": (Spec("|mean| of each input feature", derive=derived.input_abs_mean, log_y=True,
                            bounds=derived.mean_limit),
                       Spec("std of each input feature", derive=derived.input_std, log_y=True,
                            bounds=derived.std_limits)),
    "classifier_confusion": (Spec("per-class recall and confusion", derive=derived.class_recall),),
    "tree_depth": (Spec("tree depth", ("tree_depth",), threshold=True),),
    "low_feature_importance": (Spec("feature importance", derive=derived.latest_importance),),
}


def panels_for(findings: Sequence[Finding], run: Run) -> list[Panel]:
    """The panels behind the findings of one rule (all of the same kind), thresholds placed."""
    names = run.names()
    named: list[str | None] = []
    for f in findings:
        named += [s for s in finding_subjects(f) if s not in named]
    specs = SPECS.get(findings[0].kind)
    if specs:
        panels = [_build(spec, run, findings, names, named) for spec in specs]
    else:
        panels = _generic(findings, run, names, named)
    panels = [p for p in panels if p.lines]
    _place_thresholds(findings, panels)
    return panels


def matching(stat: str, names: Sequence[str]) -> list[str]:
    """Series names of a statistic, with or without options."""
    return [n for n in names if n == stat or n.startswith(stat + "[")]


def _build(spec: Spec, run: Run, findings: Sequence[Finding], names: Sequence[str],
           named: Sequence[str | None]) -> Panel:
    panel = Panel(spec.title, log_y=spec.log_y, threshold_home=spec.threshold)
    if spec.bounds is not None:
        panel.bounds = spec.bounds(run, findings)
    if spec.derive is not None:
        panel.lines = spec.derive(run, findings)
        return panel
    for stat in spec.stats:
        for name in matching(stat, names):
            lines, shown, total = _subject_lines(run, name, named)
            panel.lines += lines
            if shown < total:
                panel.note += f"{name}: {shown} of {total} subjects shown. "
    used = {ln.series for ln in panel.lines}
    if len(used) == 1 and "" not in used:  # one series: name it once, in the title; lines are its subjects
        name = used.pop()
        panel.title += f" · {name}"
        for ln in panel.lines:
            ln.label = ln.label.removeprefix(f"{name} · ")
    return panel


def _subject_lines(run: Run, name: str, named: Sequence[str | None]) -> tuple[list[Line], int, int]:
    subjects = run.subjects(name)
    if subjects == [None]:
        return [Line(name, *run.series(name))], 1, 1
    hit = [s for s in subjects if s in named]
    if not hit:  # a subject like "fc1, fc2 (+3 more)", or a class "3" of pair subjects "3,5"
        parts = {p.strip() for s in named if s for p in s.split(",")}
        hit = [s for s in subjects if s in parts or (s or "").partition(",")[0] in parts]
    shown = hit[:MAX_SUBJECTS]
    others = sorted((s for s in subjects if s not in hit), key=natural_key)[: max(0, MAX_SUBJECTS - len(shown))]
    # with named subjects the others are faint context; without, all are equal
    lines = [Line(f"{name} · {s if s is not None else 'run'}", *run.series(name, s),
                  context=bool(hit) and s not in shown, series=name) for s in shown + others]
    return lines, len(lines), len(subjects)


def _generic(findings: Sequence[Finding], run: Run, names: Sequence[str], named: Sequence[str | None]) -> list[Panel]:
    """Panels for a kind without a table entry: the named subjects' series, else run-wide series
    that take the finding's value at its step."""
    panels = []
    for name in names:
        subjects = run.subjects(name)
        if any(s is not None and s in subjects for s in named):
            lines, shown, total = _subject_lines(run, name, named)
            note = f"{shown} of {total} subjects shown. " if shown < total else ""
            panels.append(Panel(name, lines, log_y=name.startswith(("grad_", "update_ratio")), note=note))
        elif None in subjects:
            steps, values = run.series(name)
            if any(_takes_value(Line(name, steps, values), f) for f in findings):
                panels.append(Panel(name, [Line(name, steps, values)]))
    if not panels and "loss" in names:
        panels.append(Panel("loss", [Line("loss", *run.series("loss"))]))
    return panels[:_MAX_GENERIC_PANELS]


def _takes_value(line: Line, finding: Finding) -> bool:
    """Whether a line equals the finding's value (NaN matching NaN) at the finding's step; bars
    (values at one time) when one of them does."""
    if finding.value is None:
        return False
    at = line.values if line.categories is not None else line.values[line.steps == finding.step]
    if not len(at):
        return False
    if line.categories is not None:
        return bool(np.isclose(at, finding.value, rtol=1e-6, atol=1e-12).any())
    if np.isnan(finding.value):
        return bool(np.isnan(at[-1]))
    return bool(np.isclose(at[-1], finding.value, rtol=1e-6, atol=1e-12))


def _place_thresholds(findings: Sequence[Finding], panels: list[Panel]) -> None:
    """Put each finding's threshold on the panel where its value was measured; else on the panel
    the table says; else say in a note that it applies to a quantity not plotted."""
    for f in findings:
        if f.threshold is None or not np.isfinite(f.threshold):
            continue
        home = next((p for p in panels if any(_takes_value(ln, f) for ln in p.lines)), None)
        if home is None:
            home = next((p for p in panels if p.threshold_home), None)
        if home is not None and home.threshold is None:
            home.threshold = float(f.threshold)
        elif home is None and panels and f"threshold {f.threshold:g} " not in panels[0].note:
            value = "" if f.value is None else f"value {f.value:.4g} vs "
            panels[0].note += (f"The finding's {value}threshold {f.threshold:g} is on a quantity the rule derives "
                               "from these series; its message says how. ")
