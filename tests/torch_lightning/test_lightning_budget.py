"""``overhead_budget`` in a real Lightning fit: the interval follows what a sample costs, a fault is
still caught, and validation runs are not counted as training time."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import itertools

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire

pytestmark = pytest.mark.torch


def test_a_tight_budget_samples_a_tiny_model_less_often_and_says_so(capsys):
    torch.manual_seed(0)
    train, val = blobs(n=4096, seed=0), blobs(n=128, seed=1)
    # a sample of this model costs 5-50% of a plain step, whatever the machine's load: 0.1% asks for
    # an interval of 50-500, so the longest one allowed
    cb = tripwire({"overhead_budget": 0.001, "max_interval": 40})
    steps, process = [], cb.monitor.process
    cb.monitor.process = lambda sample: (steps.append(sample.step) if "val_loss" not in sample.stats else None,
                                         process(sample))[1]
    fit(Task(mlp()), loader(*train), loader(*val, shuffle=False), callback=cb, max_steps=300, val_check_interval=50)
    steps = sorted(set(steps))
    assert steps[:3] == [0, 10, 20]  # the config's interval until a few samples were measured
    assert cb.monitor.interval == 40
    assert max(b - a for a, b in itertools.pairwise(steps)) == 40
    out = capsys.readouterr().out
    assert "sampled every 40 steps (overhead budget 0.1%)" in out and "tripwire used" in out
    assert cb.findings == []


def test_a_fault_is_still_caught_within_the_longest_interval():
    torch.manual_seed(0)

    class NaNAfter(Task):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return super().training_step((x * float("nan") if self.global_step >= 150 else x, y), batch_idx)

    cb = tripwire({"overhead_budget": 0.01, "max_interval": 40, "rules": {"nonfinite": {}}}, stop_on=["nonfinite"])
    fit(NaNAfter(mlp()), loader(*blobs(n=512)), callback=cb, max_steps=400)
    assert cb.stopped_by is not None and cb.stopped_by.rule == "nonfinite"
    assert 150 <= cb.stopped_by.step < 150 + 40
