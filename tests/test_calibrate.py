"""`tripwire calibrate` and shadow mode: replays over scripted run records, and the CLI."""

from __future__ import annotations

import pytest

from tripwire import Monitor
from tripwire.calibrate import calibrate, format_table
from tripwire.cli import main
from tripwire.config import Config, RuleSpec
from tripwire.record import RunRecord
from tripwire.stats import Sample


def record(tmp_path, name, samples):
    rec = RunRecord.create(tmp_path, None, run_name=name)
    for step, stats in samples:
        rec.add_sample(Sample(step=step, epoch=0, stats=stats))
    rec.close()
    return rec.path


def gradients(mean_small, steps=8):
    """Samples with one healthy parameter and one whose mean |grad| is ``mean_small``."""
    return [(10 * i, {"grad_abs_mean": {"fc1.weight": mean_small, "fc2.weight": 1e-2},
                      "grad_norm": {"fc1.weight": 0.5, "fc2.weight": 1.0},
                      "loss": {None: 1.0 - 0.01 * i}}) for i in range(steps)]


def row(rows, rule, limit):
    return next(r for r in rows if r.rule == rule and r.limit == limit)


def test_a_lower_limit_gets_its_boundary_margin_and_a_proposal_on_the_lenient_side(tmp_path):
    path = record(tmp_path, "healthy", gradients(1e-7))
    r = row(calibrate([path], kinds=["vanishing_gradient"]), "vanishing_gradient", "threshold")
    assert r.current == 1e-9
    assert r.boundary == pytest.approx(1e-7, rel=1e-3)  # the smallest mean |grad| seen
    assert r.margin == pytest.approx(100, rel=1e-3)
    assert r.proposal(3.0) == pytest.approx(1e-7 / 3, rel=1e-3)
    assert r.fired == {}


def test_a_run_where_the_current_value_fires_is_named_with_its_step(tmp_path):
    path = record(tmp_path, "tiny-grads", gradients(1e-11))
    r = row(calibrate([path], kinds=["vanishing_gradient"]), "vanishing_gradient", "threshold")
    assert r.fired == {"tiny-grads": 10}  # patience 2: the second sample
    assert r.margin < 1
    assert r.boundary == pytest.approx(1e-11, rel=1e-3)


def test_several_runs_take_the_most_lenient_boundary(tmp_path):
    paths = [record(tmp_path, "a", gradients(1e-5)), record(tmp_path, "b", gradients(3e-6))]
    r = row(calibrate(paths, kinds=["vanishing_gradient"]), "vanishing_gradient", "threshold")
    assert r.runs == 2
    assert r.boundary == pytest.approx(3e-6, rel=1e-3)


def test_an_upper_limit_with_patience_and_the_other_limit_switched_off(tmp_path):
    # the relative test alone: norms 1.0 then a jump to 4x the running median after warm-up
    norms = [1.0] * 8 + [4.0] + [1.0] * 3
    path = record(tmp_path, "jump", [(i, {"grad_global_norm": {None: n}, "loss": {None: 1.0}})
                                     for i, n in enumerate(norms)])
    rows = calibrate([path], kinds=["exploding_gradient"])
    assert row(rows, "exploding_gradient", "factor").boundary == pytest.approx(4.0, rel=1e-3)
    assert row(rows, "exploding_gradient", "max_norm").boundary == pytest.approx(4.0, rel=1e-3)
    assert row(rows, "exploding_gradient", "factor").margin == pytest.approx(2.5, rel=1e-3)


def test_a_count_limit_is_searched_in_whole_numbers(tmp_path):
    # val_loss rises for 3 validations while the training loss keeps falling
    samples = []
    for i, val in enumerate([1.0, 0.8, 0.7, 0.75, 0.8, 0.85]):
        samples.append((100 * i, {"loss": {None: 1.0 - 0.1 * i}, "val_loss": {None: val}}))
    path = record(tmp_path, "overtrain", samples)
    r = row(calibrate([path], kinds=["overtraining"]), "overtraining", "patience")
    assert r.boundary == 3  # levels (medians of 3) 1, 0.9, 0.8, 0.75, 0.75, 0.8: best at the 4th, 2 after it
    assert r.proposal() == 5


def test_a_record_written_with_a_former_parameter_name_is_replayed_with_its_value(tmp_path):
    # a run recorded before `num_steps` became `patience` stores the former name in its config
    old = Config(rules={"frozen": RuleSpec(type="unchanged_tensor", params={"num_steps": 4})})
    rec = RunRecord.create(tmp_path, old, run_name="old")
    key = "weight_unchanged[atol=1e-08,rtol=1e-05]"
    for step in range(6):
        rec.add_sample(Sample(step=10 * step, epoch=0, stats={key: {"aux.weight": 1.0}, "loss": {None: 1.0}}))
    rec.close()
    with pytest.warns(DeprecationWarning, match="use 'patience' instead"):
        r = row(calibrate([rec.path], kinds=["frozen"]), "frozen", "patience")
    assert r.current == 4 and r.fired == {"old": 30}


def test_statistics_missing_from_the_record_are_said(tmp_path):
    path = record(tmp_path, "losses-only", [(i, {"loss": {None: 1.0}}) for i in range(5)])
    r = row(calibrate([path]), "dead_relu", "threshold_layer")
    assert r.runs == 0 and r.boundary is None and r.note == "no data"
    assert format_table([r]).splitlines()[1].split()[-1:] == ["data"]


def test_the_rules_configured_in_the_record_are_replayed_with_their_parameters(tmp_path):
    rec = RunRecord.create(tmp_path, {"rules": {"grads": {"type": "vanishing_gradient", "threshold": 1e-6}}},
                           run_name="configured")
    for step, stats in gradients(1e-5):
        rec.add_sample(Sample(step=step, epoch=0, stats=stats))
    rec.close()
    r = row(calibrate([rec.path], kinds=["grads"]), "grads", "threshold")
    assert r.current == 1e-6 and r.margin == pytest.approx(10, rel=1e-3)


def test_cli_prints_one_line_per_limit_and_fails_cleanly_on_a_bad_path(tmp_path, capsys):
    path = record(tmp_path, "healthy", gradients(1e-7))
    assert main(["calibrate", str(path.parent), "--rule", "vanishing_gradient"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("vanishing_gradient")]
    assert len(lines) == 2 and "100x" in lines[0]
    assert main(["calibrate", str(tmp_path / "nowhere")]) == 1
    assert "no tripwire run record" in capsys.readouterr().err


def test_shadow_runs_every_rule_log_only(tmp_path, caplog):
    monitor = Monitor({"shadow": True, "rules": {"nonfinite": {"actions": ["alert", "stop"]}},
                       "actions": {"console": {}}}, log_dir=tmp_path, framework="torch", run_name="shadow")
    assert "dead_relu" in monitor.engine.rules and "low_variance" in monitor.engine.rules  # not in the default set
    assert set(monitor.engine.actions.values()) == {("alert",)}
    decision = monitor.process(Sample(step=3, stats={"loss_nonfinite": {None: 1.0}}))
    assert decision.findings and decision.stop is None and monitor.stopped_by is None
    assert [type(c).__name__ for c in monitor._alerts.channels] == ["LogChannel"]
    monitor.close()
    from tripwire import Run

    assert [f.rule for f in Run(tmp_path / "shadow").findings] == ["nonfinite"]


def test_classifier_confusion_limits_are_measured_not_a_replay_error(tmp_path):
    # the search tries limits beyond [0, 1]; the rule's noise margin must stay a real number there
    matrix = {"0,0": 60.0, "0,1": 4.0, "1,1": 50.0, "1,0": 14.0}
    path = record(tmp_path, "confusion", [(100 * i, {"confusion": matrix}) for i in range(1, 4)])
    rows = calibrate([path], kinds=["classifier_confusion"])
    assert all(r.note == "" for r in rows), [r.note for r in rows]
    assert {r.limit for r in rows} == {"max_off_diag", "min_diag"}
