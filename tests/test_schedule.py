"""The sampling schedule: pinned by ``interval``, or adapting to ``overhead_budget`` (scripted timings)."""

from __future__ import annotations

import itertools

import pytest

from tripwire import ConfigError, Monitor
from tripwire.config import Config
from tripwire.schedule import Schedule
from tripwire.step_clock import StepClock


def sampled(schedule: Schedule, steps: int, cost: float, plain: float, fixed: float = 0.0) -> list[int]:
    """The steps ``schedule`` samples when each sample costs ``cost`` beyond a ``plain`` step, and
    every step ``fixed`` in the hooks."""
    out = []
    for step in range(steps):
        if schedule.due(step):
            if out:
                schedule.measured(cost, plain, fixed)
            out.append(step)
    return out


def test_pinned_interval_samples_every_n_steps_whatever_it_costs():
    schedule = Schedule(interval=10)
    assert sampled(schedule, 50, cost=1.0, plain=0.001) == [0, 10, 20, 30, 40]
    assert schedule.interval == 10 and schedule.state_dict() == {}


def test_an_expensive_sample_lengthens_the_interval_up_to_the_maximum():
    schedule = Schedule(interval=10, budget=0.01, max_interval=40)
    steps = sampled(schedule, 200, cost=0.01, plain=0.01)  # a sample costs a whole step: 1% needs 100
    assert steps[:4] == [0, 10, 20, 30] and schedule.interval == 40
    assert {b - a for a, b in itertools.pairwise(steps[3:])} == {40}


def test_a_cheap_sample_shortens_the_interval_down_to_the_minimum():
    schedule = Schedule(interval=10, budget=0.05, min_interval=2)
    steps = sampled(schedule, 60, cost=0.0001, plain=0.01)  # 1% of a step per sample: 5% allows every step
    assert schedule.interval == 2 and steps[-2:] == [56, 58]


def test_the_chosen_interval_keeps_the_measured_overhead_within_the_budget():
    schedule = Schedule(interval=10, budget=0.02)
    sampled(schedule, 5000, cost=0.003, plain=0.01)  # 0.3 steps per sample at 2%: every 15 steps
    assert schedule.interval == 15
    assert schedule.overhead is not None and schedule.overhead < 0.03


def test_what_every_step_pays_in_the_hooks_leaves_less_of_the_budget_to_samples():
    schedule = Schedule(interval=10, budget=0.02)
    sampled(schedule, 5000, cost=0.003, plain=0.01, fixed=0.0001)  # 1% per step is fixed: 1% left
    assert schedule.interval == 30
    assert schedule.overhead == pytest.approx(0.02, rel=0.05)  # both parts counted


def test_hooks_that_alone_exceed_the_budget_sample_as_rarely_as_allowed():
    schedule = Schedule(interval=10, budget=0.01, max_interval=100)
    sampled(schedule, 1000, cost=0.003, plain=0.01, fixed=0.0002)  # 2% of every step is fixed
    assert schedule.interval == 100
    assert schedule.overhead > 0.02  # reported as it is: over the budget


def test_noise_within_the_hysteresis_leaves_the_interval_alone():
    schedule = Schedule(interval=10, budget=0.01)
    sampled(schedule, 300, cost=0.0011, plain=0.01)  # wants 11: within 25% of 10
    assert schedule.interval == 10


def test_nonfinite_or_missing_measurements_change_nothing():
    schedule = Schedule(interval=10, budget=0.01)
    for _ in range(5):
        schedule.measured(float("nan"), 0.01)
        schedule.measured(0.01, 0.0)
    assert schedule.interval == 10 and schedule.overhead is None


def test_a_resumed_run_keeps_the_adapted_interval_and_the_next_sampled_step():
    monitor = Monitor({"overhead_budget": 0.01}, log_dir=False)
    sampled(monitor.schedule, 100, cost=0.01, plain=0.01)
    state = monitor.state_dict()
    resumed = Monitor({"overhead_budget": 0.01}, log_dir=False)
    resumed.load_state_dict(state)
    assert resumed.interval == monitor.interval == 100
    assert resumed.schedule.next_due == monitor.schedule.next_due


def test_the_summary_names_the_overhead_and_the_interval_under_a_budget(capsys):
    monitor = Monitor({"overhead_budget": 0.01, "rules": {"nonfinite": {}}}, log_dir=False)
    monitor.open()
    sampled(monitor.schedule, 100, cost=0.01, plain=0.01)
    monitor.close()
    out = capsys.readouterr().out
    assert "sampled every 100 steps (overhead budget 1%)" in out and "tripwire used" in out
    pinned = Monitor({"interval": 10, "rules": {"nonfinite": {}}}, log_dir=False)
    pinned.open()
    pinned.close()
    assert "sampled every" not in capsys.readouterr().out


def test_interval_and_overhead_budget_together_are_a_config_error_naming_both():
    with pytest.raises(ConfigError, match=r"either interval .* or overhead_budget"):
        Config.load("overhead_budget: 0.01\ninterval: 5\n")
    with pytest.raises(ConfigError, match="min_interval"):
        Config.load({"overhead_budget": 0.01, "min_interval": 50, "max_interval": 10})
    with pytest.raises(ConfigError, match="overhead_budget"):
        Config.load({"overhead_budget": 1.5})


def test_a_keyword_interval_pins_a_budgeted_config():
    monitor = Monitor({"overhead_budget": 0.01}, interval=7, log_dir=False)
    assert not monitor.config.budgeted and monitor.interval == 7
    assert Monitor({"overhead_budget": 0.01}, strict=True, log_dir=False).config.budgeted
    assert Monitor(None, log_dir=False).schedule.budgeted  # the default: a 1% budget, from interval 10
    assert not Monitor({"interval": 10}, log_dir=False).schedule.budgeted  # an interval pins it
    assert not Monitor({"overhead_budget": None}, log_dir=False).schedule.budgeted  # so does no budget
    for framework in ("keras", "xgboost"):  # whose interval is compiled in, or rounds are the unit
        assert not Monitor(None, framework=framework, log_dir=False).schedule.budgeted


def test_the_step_clock_skips_interrupted_steps_and_repeated_micro_batches():
    clock = StepClock()
    times = iter([0.0, 0.010, 0.020, 0.5, 0.530, 0.540])
    clock.begin(0, sampled=False, now=next(times))
    clock.begin(0, sampled=False, now=0.005)  # another micro-batch of step 0
    clock.begin(1, sampled=False, now=next(times))
    clock.begin(2, sampled=False, now=next(times))
    clock.interrupt()  # a validation run inside step 2
    clock.begin(3, sampled=True, now=next(times))
    clock.begin(4, sampled=False, now=next(times))
    cost, plain, fixed = clock.take()
    assert plain == pytest.approx(0.010) and cost == pytest.approx(0.020) and fixed == 0.0


def test_the_step_clock_averages_what_plain_steps_spend_in_the_hooks():
    clock = StepClock()
    for step in range(11):
        clock.begin(step, sampled=step == 10, now=0.01 * step)
        clock.spent(0.0004 if step % 5 == 0 else 0.0001)  # a labels step costs more; the sample's is its own
    clock.begin(11, sampled=False, now=0.11 + 0.002)
    cost, plain, fixed = clock.take()
    assert fixed == pytest.approx((2 * 0.0004 + 8 * 0.0001) / 10)  # the mean over plain steps 0-9
    assert cost == pytest.approx(0.002) and plain == pytest.approx(0.01)


@pytest.mark.parametrize("framework", ["keras", "xgboost"])
def test_adapters_with_a_fixed_interval_refuse_a_budget_with_a_clear_error(framework):
    with pytest.raises(ConfigError, match=f"not supported by the {framework} adapter.*give interval"):
        Monitor({"overhead_budget": 0.01}, framework=framework, log_dir=False)
    assert Monitor({"overhead_budget": 0.01}, framework="torch", log_dir=False).config.budgeted


def test_the_default_budget_samples_no_denser_than_the_interval_the_rules_were_measured_at():
    monitor = Monitor(None, log_dir=False)
    steps = sampled(monitor.schedule, 200, cost=0.0001, plain=1.0)  # a long step: sampling costs next to nothing
    assert monitor.schedule.interval == 10 and steps[:5] == [0, 10, 20, 30, 40]
    dense = Monitor({"overhead_budget": 0.01, "min_interval": 1}, log_dir=False)  # asked for: allowed
    sampled(dense.schedule, 200, cost=0.0001, plain=1.0)
    assert dense.schedule.interval == 1
