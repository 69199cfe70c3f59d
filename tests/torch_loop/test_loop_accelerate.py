"""The plain-loop Tripwire under Hugging Face Accelerate, with its gradient accumulation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
accelerate = pytest.importorskip("accelerate")

from torch import nn

from loop_kit import batches, blobs, mlp, quiet

pytestmark = pytest.mark.torch


def accelerate_run(config, batches_run: int, accumulate: int = 1, fault_from: int | None = None):
    """Train a tiny MLP through ``accelerator.prepare``; returns the Tripwire."""
    torch.manual_seed(0)
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=accumulate)
    model, (x, y) = mlp(), blobs(n=1024)
    model, optimizer = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    tw = quiet(model, optimizer, config)
    data = batches(x, y)
    for _ in range(batches_run):
        xb, yb = next(data)
        if fault_from is not None and tw.steps >= fault_from:
            xb = xb * float("nan")
        with accelerator.accumulate(model):
            loss = nn.functional.cross_entropy(model(xb), yb)
            accelerator.backward(loss)
            optimizer.step()  # a real step only on the last micro-batch
            optimizer.zero_grad()
        if tw.step(loss, inputs=xb, labels=yb):
            break
    tw.close()
    accelerator.end_training()
    return tw


def test_healthy_accelerate_run_is_silent_with_the_defaults_and_counts_real_steps():
    tw = accelerate_run(None, batches_run=120, accumulate=2)
    assert tw.findings == [] and tw.steps == 60
    # optimizer steps, not micro-batches (the budget's first three samples are 10 steps apart)
    assert sorted(tw.monitor.sampled_steps)[:3] == [0, 10, 20]


def test_a_fault_under_accelerate_is_caught_and_stops_training():
    tw = accelerate_run({"interval": 4, "rules": {"nonfinite": {}}}, batches_run=120, accumulate=2, fault_from=9)
    assert tw.should_stop and tw.stopped_by.rule == "nonfinite" and tw.stopped_by.step == 12
