"""Which series the report plots behind each rule, and where it draws the threshold.

The findings come from the real rules (``hostile_run``, ``zoo_run``), so these tests also check
that the report recomputes what the rules measured: the threshold must land on a line that
takes the finding's value at the finding's step.
"""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.finding import Finding
from tripwire.record import Run
from tripwire.report.evidence import MAX_SUBJECTS, SPECS, panels_for
from tripwire.stats import Sample

# kinds whose value the report plots exactly; the others get the threshold on the table's panel or a note
MEASURED = {"poor_initialization", "tanh_saturation", "vanishing_gradient", "all_zero", "low_variance",
            "small_updates", "class_imbalance", "token_ratio", "classifier_confusion", "dead_relu", "tree_depth",
            "overfit", "exploding_gradient", "nonfinite", "underfit", "loss_not_decreasing", "not_normalized"}


@pytest.fixture
def run(hostile_run):
    with Run(hostile_run) as r:
        yield r


def the(run, rule):
    (finding,) = [f for f in run.findings if f.rule == rule]
    return finding


def value_at(line, step):
    return line.values[line.steps == step][-1]


def test_dead_relu_plots_the_dead_fraction_with_the_named_layer_first_and_the_threshold(run, data):
    finding = the(run, "dead_relu")
    (panel,) = panels_for([finding], run)
    assert panel.title == f"dead unit fraction · {data.DEAD}"
    assert [ln.label for ln in panel.lines] == [data.IMG_LAYER, "act1", "act3"]
    assert [ln.context for ln in panel.lines] == [False, True, True]  # act1, act3 faint, for comparison
    assert panel.threshold == finding.threshold == 0.5
    assert value_at(panel.lines[0], finding.step) == finding.value


def test_merged_vanishing_gradient_finding_shows_every_named_parameter_on_the_scale_it_was_measured(run, data):
    finding = the(run, "vanishing_gradient")
    assert set(finding.evidence["subjects"]) == {"fc2.weight", data.SCRIPT_LAYER}
    means, relative, norms = panels_for([finding], run)
    assert [means.title, norms.title] == ["mean |gradient| · grad_abs_mean", "gradient norm · grad_norm"]
    assert {ln.label for ln in means.lines if not ln.context} == {"fc2.weight", data.SCRIPT_LAYER}
    assert {ln.label for ln in relative.lines} == {"fc2.weight", data.SCRIPT_LAYER}
    # it fired on mean |g| < 1e-7, so the threshold is drawn there, not on the norms
    assert means.threshold == finding.threshold and relative.threshold is None and norms.threshold is None
    assert all(p.log_y for p in (means, relative, norms))


def test_overfit_plots_the_losses_and_the_gap_the_rule_computed(run):
    finding = the(run, "overfit")
    losses, gap = panels_for([finding], run)
    assert {ln.label for ln in losses.lines} == {"loss", "val_loss"}
    assert gap.threshold == finding.threshold and losses.threshold is None
    assert value_at(gap.lines[0], finding.step) == pytest.approx(finding.value)


def test_unknown_rule_kind_finds_the_run_wide_series_that_took_its_value(run):
    finding = the(run, "grad_spike")  # value NaN at step 500: grad_global_norm was NaN there
    (panel,) = panels_for([finding], run)
    assert panel.title == "grad_global_norm"
    assert np.isnan(value_at(panel.lines[0], 500))


def test_unknown_rule_kind_with_a_subject_plots_that_subject(tmp_path, data):
    samples = [Sample(s, 0, {"weight_var": {"a": 1.0 / s, "b": 1.0}, "loss": {None: 1.0}}) for s in (10, 20, 30)]
    f = Finding("tiny", "pkg.mod:Tiny", 30, 0, "info", "a", 1 / 30, 0.05, "a is tiny", "reinit")
    with Run(data.write_run(tmp_path, samples, [f], "u")) as run:
        (panel,) = panels_for([f], run)
    assert panel.title == "weight_var" and panel.threshold == 0.05
    assert [(ln.label, ln.context) for ln in panel.lines] == [("weight_var · a", False), ("weight_var · b", True)]


def test_many_subjects_are_capped_and_say_so(tmp_path, data):
    params = [f"layer{i}.weight" for i in range(40)]
    samples = [Sample(s, 0, {"update_ratio": {p: 1e-3 for p in params}}) for s in (10, 20)]
    samples[1].stats["update_ratio"]["layer33.weight"] = 1e-9
    f = Finding("small_updates", "small_updates", 20, 0, "warning", "layer33.weight", 1e-9, 1e-6, "tiny", "raise LR")
    with Run(data.write_run(tmp_path, samples, [f], "cap")) as run:
        (panel,) = panels_for([f], run)
    assert len(panel.lines) == MAX_SUBJECTS
    assert panel.lines[0].label == "layer33.weight" and not panel.lines[0].context
    assert [ln.label for ln in panel.lines[1:4]] == ["layer0.weight", "layer1.weight", "layer2.weight"]
    assert f"{MAX_SUBJECTS} of 40 subjects shown" in panel.note
    assert panel.threshold == 1e-6


def test_every_built_in_kind_that_fires_gets_its_evidence_and_threshold(zoo_run):
    with Run(zoo_run) as run:
        findings = run.findings
        kinds = {f.kind for f in findings}
        assert len(kinds) >= 18 and kinds <= set(SPECS)
        for f in findings:
            panels = panels_for([f], run)
            assert panels, f.kind
            drawn = [p for p in panels if p.threshold is not None]
            if f.kind in MEASURED:
                assert drawn and drawn[0].threshold == f.threshold, f.kind
                assert any(np.isclose(ln.values, f.value).any() if ln.categories is not None else
                           f.step in ln.steps and np.isclose(value_at(ln, f.step), f.value)
                           for ln in drawn[0].lines), f.kind
            else:
                assert drawn or f"threshold {f.threshold:g} is on a quantity" in panels[0].note, f.kind


def test_bar_panels_show_the_latest_feature_importance_and_input_moments(zoo_run):
    with Run(zoo_run) as run:
        (importance,) = panels_for([the(run, "low_feature_importance")], run)
        finding = the(run, "not_normalized")
        means, stds = panels_for([finding], run)
    (bars,) = importance.lines
    assert bars.categories[:3] == ["f0", "f1", "f2"] and bars.values[0] == pytest.approx(0.6, rel=1e-3)
    assert importance.bars and means.bars and stds.bars
    (mean,), (std,) = means.lines, stds.lines
    assert mean.categories[0] == "price"  # the feature the finding named comes first
    assert mean.values[0] == pytest.approx(1e5) and std.values[0] == pytest.approx(1e4, rel=1e-3)
    # the finding's value is price's |mean|, its threshold the |mean| limit; the std panel has the std range
    assert (finding.value, finding.threshold) == (pytest.approx(1e5), 3.0)
    assert means.limits() == [(3.0, "threshold: |mean| limit 3")]
    assert stds.limits() == [(0.01, "std lower limit 0.01"), (10.0, "std upper limit 10")]


def test_a_floored_overfit_gap_is_plotted_with_the_floor_the_rule_used(tmp_path, data):
    from tripwire.config import Config
    from tripwire.engine import Engine

    samples = []
    for step in range(10, 1010, 10):  # memorizes: train 2.25 -> 3e-6, val climbs from 1.2
        samples.append(Sample(step, step // 100, {"loss": {None: 2.25 * np.exp(-step / 30) + 2.7e-6}}))
        if step % 100 == 0:
            samples.append(Sample(step, step // 100, {"val_loss": {None: 1.0 + step / 250}}))
    engine = Engine(Config.load({"rules": {"overfit": {"floor": 0.2}}}))
    findings = [f for s in samples for f in engine.evaluate(s)]
    (finding,) = findings
    assert finding.evidence["floored"]
    run_dir = data.write_run(tmp_path, samples, findings, "memorized", {"rules": {"overfit": {"floor": 0.2}}})
    with Run(run_dir) as run:
        _, gap = panels_for([finding], run)
    (line,) = gap.lines
    assert value_at(line, finding.step) == pytest.approx(finding.value)  # not the ~1e6 of val / 3e-6
    assert gap.threshold == finding.threshold
    assert line.label == f"(val_loss − loss) / max(loss, {finding.evidence['denominator']:.3g})"
    assert f"by {finding.value:.4g} x {finding.evidence['denominator']:.4g}, the floor" in finding.message
