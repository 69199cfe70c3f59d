"""`loss_spike` and `skip_step` in a plain loop: a batch with inputs x1000 is left out of training,
every rank of a DDP run skips the same step, and a healthy run trains exactly as without tripwire."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from loop_kit import batches, blobs, mlp, quiet

pytestmark = pytest.mark.torch

POISONED = 150
SPIKE = {"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}}}


def run(config: object | None, poison: bool, steps: int = 250) -> tuple[float, nn.Module, object]:
    """SGD with momentum on overlapping blobs; the batch of step 150 has its inputs x1000 when
    ``poison``. Returns the loss on the whole data set after training, the model and the Tripwire."""
    torch.manual_seed(0)
    x, y = blobs(n=512, features=8, classes=3)
    model = mlp(features=8, hidden=32, classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tw = quiet(model, optimizer, config, interval=10) if config is not None else None
    data = batches(x, y)
    for step in range(steps):
        xb, yb = next(data)
        if poison and step == POISONED:
            xb = xb * 1000
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if tw is not None:
            tw.step(loss)
    if tw is not None:
        tw.close()
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item(), model, tw


def test_skip_step_leaves_the_poisoned_batch_out():
    clean, _, _ = run(None, poison=False)
    damaged, _, _ = run(None, poison=True)
    skipped, _, tw = run(SPIKE, poison=True)
    assert damaged > 2 * clean  # the poisoned update is visible at the end of training
    assert abs(skipped - clean) < 0.05 * clean
    [finding] = tw.findings  # both series spiked at that step: one finding names both
    assert finding.rule == "loss_spike" and finding.subject == "loss, grad_norm"
    assert finding.evidence["last_spike_step"] == POISONED and finding.evidence["steps_skipped"] == 1
    assert "skip_step left out 1 update" in finding.message


def test_without_skip_step_the_spike_is_reported_and_the_update_applied():
    damaged, _, _ = run(None, poison=True)
    alerted, _, tw = run({"rules": {"loss_spike": {}}}, poison=True)
    assert alerted == damaged
    assert [(f.subject, f.evidence["last_spike_step"], f.evidence["steps_skipped"]) for f in tw.findings] == \
        [("loss, grad_norm", POISONED, None)]


def test_a_healthy_run_with_skip_step_trains_exactly_as_without_tripwire():
    _, plain, _ = run(None, poison=False)
    _, watched, tw = run(SPIKE, poison=False)
    assert tw.findings == []
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)


def test_the_optimizer_state_of_a_skipped_step_is_left_as_it_was():
    torch.manual_seed(0)
    x, y = blobs(n=256, features=8, classes=3)
    model = mlp(features=8, hidden=16, classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    config = {"rules": {"loss_spike": {"warmup": 16, "window": 32, "actions": ["skip_step"]}}}
    with quiet(model, optimizer, config, interval=5) as tw:
        for step, (xb, yb) in zip(range(40), batches(x, y)):
            loss = nn.functional.cross_entropy(model(xb * (1000 if step == 30 else 1)), yb)
            loss.backward()
            before = [(p.detach().clone(), {k: v.clone() for k, v in optimizer.state[p].items()})
                      for p in model.parameters()] if step == 30 else None
            optimizer.step()
            optimizer.zero_grad()
            tw.step(loss)
            if before is not None:
                for p, (value, state) in zip(model.parameters(), before):
                    assert torch.equal(p, value)
                    assert all(torch.equal(optimizer.state[p][k], v) for k, v in state.items())
    steps = {float(optimizer.state[p]["step"]) for p in model.parameters()}
    assert steps == {39.0}  # 40 batches, one update left out
