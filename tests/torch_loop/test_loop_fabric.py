"""The plain-loop Tripwire under Lightning Fabric: model and optimizer as ``fabric.setup`` wraps them."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
fabric_module = pytest.importorskip("lightning.fabric")

from torch import nn

from loop_kit import batches, blobs, mlp, quiet

pytestmark = pytest.mark.torch


def fabric_run(config, steps: int, fault_from: int | None = None, dead_bias: bool = False):
    """Train a tiny MLP with Fabric and a Tripwire; returns the Tripwire and the model Fabric trained."""
    torch.manual_seed(0)
    fabric = fabric_module.Fabric(accelerator="cpu", devices=1)
    model, (x, y) = mlp(), blobs(n=1024)
    if dead_bias:
        with torch.no_grad():
            model[2].bias.fill_(-20.0)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    tw = quiet(model, optimizer, config)
    data = batches(x, y)
    for step in range(steps):
        xb, yb = next(data)
        if fault_from is not None and step >= fault_from:
            xb = xb * float("nan")
        loss = nn.functional.cross_entropy(model(xb), yb)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        if tw.step(loss, inputs=xb, labels=yb):
            break
    tw.close()
    return tw, model


def test_healthy_fabric_run_is_silent_with_the_defaults():
    tw, model = fabric_run(None, steps=60)
    assert tw.findings == [] and tw.steps == 60 and tw.model is model.module
    assert sorted(tw.monitor.sampled_steps)[:3] == [0, 10, 20]  # the budget's first three samples


def test_a_fault_under_fabric_is_caught_and_stops_training():
    tw, _ = fabric_run({"interval": 4, "rules": {"nonfinite": {}}}, steps=60, fault_from=9)
    assert tw.should_stop and tw.stopped_by.rule == "nonfinite" and tw.stopped_by.step == 12


def test_a_dead_layer_under_fabric_is_named_with_the_models_own_names():
    tw, _ = fabric_run(None, steps=60, dead_bias=True)
    dead = [f for f in tw.findings if f.rule == "dead_relu"]
    assert dead and dead[0].subject == "3"
