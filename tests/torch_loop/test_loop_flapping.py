"""A finding that flaps in a real training: hysteresis folds it into one finding, the rate limit
caps the alerts, and the run record keeps every occurrence."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from loop_kit import batches, blobs, mlp, train
from tripwire import Run
from tripwire.torch import Tripwire

STEPS = 200


def spike_every_8th_batch(step: int, x: torch.Tensor) -> torch.Tensor:
    """A bad batch (inputs 300x) every 8 steps: the gradient norm jumps past max_norm and falls back."""
    return x * 300 if step % 8 == 4 else x


def run(tmp_path, rule: dict, fault=spike_every_8th_batch) -> tuple[Tripwire, list[logging.LogRecord], Run]:
    torch.manual_seed(0)
    x, y = blobs(256, features=8)
    model = mlp(features=8, hidden=16, classes=3)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    config = {"interval": 1, "log_dir": str(tmp_path), "rules": {"exploding_gradient": {"max_norm": 20.0, **rule}},
              "actions": {"log": {"logger": "flap.alerts"}, "rate_limit": {"alerts": 3}}}
    handler = _Keep()
    logging.getLogger("flap.alerts").addHandler(handler)
    try:
        with Tripwire(model, optimizer, config, run_name="flap") as tw:
            train(tw, model, optimizer, batches(x, y), STEPS, fault=fault)
    finally:
        logging.getLogger("flap.alerts").removeHandler(handler)
    return tw, handler.records, Run(tmp_path / "flap")


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_flapping_finding_is_one_finding_and_one_alert_by_default(tmp_path, capsys):
    tw, alerts, record = run(tmp_path, {})
    spikes = len([s for s in range(STEPS) if s % 8 == 4])  # 25
    assert [f.step for f in tw.monitor.findings] == [4]  # the spikes come 8 samples apart, under rearm_after
    assert [a.tripwire_finding.step for a in alerts] == [4]
    assert len(record.findings) + len(record.repeats) == spikes  # every occurrence is on record
    assert [f.step for f in record.repeats] == list(range(12, STEPS, 8))
    assert f"(fired {spikes} times)" in capsys.readouterr().out  # the summary counts them


def test_alerts_past_the_limit_are_told_in_one_summary(tmp_path):
    tw, alerts, record = run(tmp_path, {"rearm_after": 3})  # re-arms between spikes: a finding per spike
    spikes = [s for s in range(STEPS) if s % 8 == 4]
    assert [f.step for f in tw.monitor.findings] == spikes and record.repeats == []
    assert [f.step for f in record.findings] == spikes
    told = [a.tripwire_finding for a in alerts]
    assert [f.step for f in told[:3]] == spikes[:3] and len(told) == 4
    assert told[3].message.startswith(f"exploding_gradient fired {len(spikes) - 3} more times since ")
    assert told[3].evidence["held_back"] == len(spikes) - 3 and told[3].step == spikes[-1]


@pytest.mark.parametrize("rule", [{}, {"rearm_after": 3}])
def test_a_healthy_run_alerts_nothing(tmp_path, rule):
    tw, alerts, record = run(tmp_path, rule, fault=None)
    assert tw.monitor.findings == [] and alerts == [] and record.findings == [] and record.repeats == []
