"""`loss_spike` on scripted samples: what the device sends at a flush (spike count, largest z, last
spiking step per series) turns into one finding per burst, naming the step and what was done."""

import pytest

from tripwire import Config, ConfigError, Monitor
from tripwire.rules.loss_spike import LossSpike
from tripwire.stats import Sample


def sample(rule, step, **series):
    """A flush's sample: ``series=(count, max_z, last_step)`` for each judged series."""
    keys = {s: {n.stat: n.key for n in rule._needs(s).values()} for s in series}
    stats = {}
    for name, (count, max_z, last) in series.items():
        stats[keys[name]["spike_count"]] = {None: float(count)}
        if max_z is not None:
            stats[keys[name]["spike_max_z"]] = {None: float(max_z)}
        if count:
            stats[keys[name]["spike_last_step"]] = {None: float(last)}
    return Sample(step=step, stats=stats)


def test_fires_on_a_spike_and_clears_on_the_next_calm_sample():
    rule = LossSpike("loss_spike")
    calm = rule.check(sample(rule, 10, loss=(0, 2.0, None), grad_norm=(0, 1.5, None)))
    spike = rule.check(sample(rule, 20, loss=(1, 15.0, 17), grad_norm=(0, 3.0, None)))
    assert [(v.subject, v.fired) for v in calm] == [("loss", False), ("grad_norm", False)]
    assert [(v.subject, v.fired) for v in spike] == [("loss", True), ("grad_norm", False)]
    assert spike[0].value == 15.0 and spike[0].threshold == 6.0 and spike[0].evidence["last_spike_step"] == 17
    assert spike[0].message.startswith("loss spike at step 17: 15 robust deviations")


def test_the_warm_up_sends_no_z_and_is_silent():
    rule = LossSpike("loss_spike", LossSpike.Params(series=["grad_norm"]))
    assert [v.fired for v in rule.check(sample(rule, 0, grad_norm=(0, None, None)))] == [False]


def test_a_sample_without_spike_series_gives_no_verdict():
    rule = LossSpike("loss_spike")
    assert rule.check(Sample(step=5, stats={"val_loss": {None: 1.0}})) == []


def test_the_limit_is_compared_on_the_host_so_calibration_can_replay_it():
    strict, lenient = LossSpike("a", LossSpike.Params(limit=4.0)), LossSpike("b", LossSpike.Params(limit=20.0))
    assert {n.key for n in strict.needs() if n.stat != "spike_count"} == \
        {n.key for n in lenient.needs() if n.stat != "spike_count"}
    s = sample(strict, 10, loss=(0, 5.0, None))
    assert [v.fired for v in strict.check(s)] == [True]
    assert [v.fired for v in lenient.check(s)] == [False]


def test_the_finding_says_how_many_updates_skip_step_left_out():
    m = Monitor({"rules": {"loss_spike": {"series": ["loss"], "actions": ["alert", "skip_step"]}}},
                log_dir=False, remediations=("skip_step",))
    rule = m.engine.rules["loss_spike"]
    s = sample(rule, 30, loss=(2, 40.0, 28))
    s.add("steps_skipped", 2.0)
    [finding] = m.process(s).findings
    assert finding.evidence["steps_skipped"] == 2.0 and finding.step == 30
    assert finding.message.endswith("(limit 6); 2 spiking steps since the previous sample; "
                                    "skip_step left out 2 update(s)")
    assert "add skip_step" not in finding.suggestion
    m.close(print_summary=False)


def test_one_finding_per_burst():
    m = Monitor({"rules": {"loss_spike": {"series": ["loss"]}}}, log_dir=False)
    rule = m.engine.rules["loss_spike"]
    fired = [len(m.process(sample(rule, step, loss=spec)).findings)
             for step, spec in [(10, (1, 9.0, 7)), (20, (1, 8.0, 12)), (30, (0, 1.0, None)), (40, (1, 7.0, 33))]]
    assert fired == [1, 0, 0, 1]
    m.close(print_summary=False)


@pytest.mark.parametrize("params, match", [({"warmup": 200}, "warmup .200. must not exceed window .128."),
                                           ({"series": ["loss", "val_loss"]}, "rules.loss_spike.series.1"),
                                           ({"limit": 0}, "rules.loss_spike.limit")])
def test_bad_parameters_are_located_config_errors(params, match):
    with pytest.raises(ConfigError, match=match):
        Config.load({"rules": {"loss_spike": params}})


def test_not_in_the_default_set():
    assert "loss_spike" not in Config().rule_specs()
