"""`loss_spike` and `skip_step` in a plain loop: a batch with inputs x1000 is left out of training,
every rank of a DDP run skips the same step, and a healthy run trains exactly as without tripwire."""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from loop_kit import batches, blobs, mlp, quiet, train

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


@functools.cache
def unmonitored(poison: bool) -> tuple[float, nn.Module]:
    """:func:`run` without tripwire: the same for every test that compares with it."""
    loss, model, _ = run(None, poison)
    return loss, model


def test_skip_step_leaves_the_poisoned_batch_out():
    (clean, _), (damaged, _) = unmonitored(False), unmonitored(True)
    skipped, _, tw = run(SPIKE, poison=True)
    assert damaged > 2 * clean  # the poisoned update is visible at the end of training
    assert abs(skipped - clean) < 0.05 * clean
    finding, effect = tw.findings  # both series spiked at that step: one finding names both
    assert finding.rule == "loss_spike" and finding.subject == "loss, grad_norm"
    assert finding.evidence["last_spike_step"] == POISONED and finding.evidence["steps_skipped"] == 1
    assert "skip_step left out 1 update" in finding.message
    # what followed, at the next sample: the loss back at its level before the spike
    assert (effect.kind, effect.severity, effect.step, effect.evidence["at_step"]) == \
        ("skip_step_effect", "info", POISONED + 10, POISONED)
    assert effect.evidence["loss_after"] < 1.5 * effect.evidence["loss_before"]


def test_without_skip_step_the_spike_is_reported_and_the_update_applied():
    damaged, _ = unmonitored(True)
    alerted, _, tw = run({"rules": {"loss_spike": {}}}, poison=True)
    assert alerted == damaged
    assert [(f.subject, f.evidence["last_spike_step"], f.evidence["steps_skipped"]) for f in tw.findings] == \
        [("loss, grad_norm", POISONED, None)]


def test_a_healthy_run_with_skip_step_trains_exactly_as_without_tripwire():
    _, plain = unmonitored(False)
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


def run_lr(config: object | None, lr: float, steps: int = 300) -> tuple[float, object, list[float]]:
    """SGD with momentum at ``lr`` under a (constant) LambdaLR scheduler; the loss on the whole data
    set afterwards, the Tripwire, and per optimizer step the scheduler's rate and the rate in use
    (read by hooks registered before tripwire's, so they run first: before its scaling, then before
    it puts the scheduler's rate back)."""
    torch.manual_seed(0)
    x, y = blobs(n=512, features=8, classes=3)
    model = mlp(features=8, hidden=32, classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    used: list[float] = []
    optimizer.register_step_pre_hook(lambda o, args, kwargs: used.append(o.param_groups[0]["lr"]))
    optimizer.register_step_post_hook(lambda o, args, kwargs: used.append(o.param_groups[0]["lr"]))
    tw = quiet(model, optimizer, config, interval=10) if config is not None else None
    data = batches(x, y)
    for _ in range(steps):
        xb, yb = next(data)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if tw is not None:
            tw.step(loss)
    if tw is not None:
        tw.close()
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item(), tw, used


@functools.cache
def unmonitored_lr(lr: float) -> float:
    """:func:`run_lr` without tripwire: the loss after training."""
    return run_lr(None, lr)[0]


def test_reduce_lr_recovers_a_learning_rate_that_is_too_high():
    too_high = unmonitored_lr(0.5)
    config = {"rules": {"loss_spike": {"actions": ["alert", {"reduce_lr": {"factor": 0.1}}]}}}
    recovered, tw, used = run_lr(config, lr=0.5)
    assert recovered < 0.5 * too_high
    spike, done, effect = tw.findings
    assert (spike.kind, done.kind, done.rule, done.step) == ("loss_spike", "reduce_lr", "loss_spike", spike.step)
    assert (effect.kind, effect.step) == ("reduce_lr_effect", spike.step + 10)
    assert done.evidence["lr_before"] == 0.5 and done.evidence["lr_after"] == pytest.approx(0.05)
    # the optimizer stepped at 0.5 until the reduction, at 0.05 after it; the scheduler kept its own 0.5
    scheduled, in_use = used[0::2], used[1::2]
    assert set(in_use[:done.step + 1]) == {0.5} and in_use[done.step + 1:] == [pytest.approx(0.05)] * (299 - done.step)
    assert set(scheduled) == {0.5}


def test_reduce_lr_stops_at_max_times_and_min_lr():
    config = {"rules": {"loss_spike": {"limit": 1.0, "window": 16, "warmup": 8,
                                       "actions": [{"reduce_lr": {"factor": 0.5, "min_lr": 0.2, "max_times": 2}}]}}}
    _, tw, used = run_lr(config, lr=0.5, steps=200)
    reductions = [f for f in tw.findings if f.kind == "reduce_lr"]
    assert [f.evidence["lr_after"] for f in reductions] == [0.25, 0.2]  # 0.125 is below min_lr
    assert tw.monitor.lr_reductions == 2 and len([f for f in tw.findings if f.kind == "loss_spike"]) > 2
    assert len([f for f in tw.findings if f.kind == "reduce_lr_effect"]) == 2
    assert min(used[1::2]) == 0.2


def broken(*args, **kwargs):
    raise RuntimeError("planted failure")


@pytest.mark.parametrize("where", ["judge", "skip"])
def test_a_failing_spike_judgement_or_skip_switches_off_with_one_warning_and_training_goes_on(monkeypatch, caplog,
                                                                                             where):
    from tripwire.callbacks.torch.driver import TorchDriver
    from tripwire.callbacks.torch.spike import SpikeProbe

    if where == "judge":
        monkeypatch.setattr(SpikeProbe, "judge", broken)
    else:
        monkeypatch.setattr(TorchDriver, "_skip_if_spiked", broken)
    damaged, _ = unmonitored(True)
    trained, _, tw = run(SPIKE, poison=True)
    assert trained == damaged  # nothing skipped: the update of step 150 was applied as without tripwire
    part = "spike detection" if where == "judge" else "skip_step action"
    assert tw.monitor.guard.disabled.keys() == {part}
    assert sum("planted failure" in r.getMessage() for r in caplog.records) == 1


def test_a_failing_reduce_lr_is_logged_and_training_goes_on(monkeypatch, caplog):
    from tripwire.callbacks.torch.lr_scale import LrScale

    monkeypatch.setattr(LrScale, "reduce", broken)
    config = {"rules": {"loss_spike": {"actions": ["alert", {"reduce_lr": {"factor": 0.1}}]}}}
    too_high = unmonitored_lr(0.5)
    trained, tw, _ = run_lr(config, lr=0.5)
    assert trained == too_high and tw.monitor.lr_reductions == 0
    assert tw.findings and {f.kind for f in tw.findings} == {"loss_spike"}  # no reduce_lr finding
    assert any("reduce_lr failed: planted failure" in r.getMessage() for r in caplog.records)


def test_the_heavy_tail_of_a_nearly_fitted_classifier_is_no_spike():
    """Nearly separable blobs with 1% wrong labels, batch size 16: once fitted, most batches sit at a
    loss of 0.004 and those holding a wrong label at 0.1-0.5 (the tail: 95th percentile 0.27). Judged
    against the MAD alone they 'spiked' five times in 400 steps; the scale now covers the tail the
    history holds, and a batch with inputs x1000 is still caught (test_skip_step_leaves_the_poisoned_batch_out)."""
    from tripwire.kit.torch import blobs as kit_blobs

    torch.manual_seed(0)
    x, y = kit_blobs(n=1024, features=8, classes=3, spread=0.5)
    flip = torch.rand(len(y), generator=torch.Generator().manual_seed(1)) < 0.01
    y = torch.where(flip, (y + 1) % 3, y)
    model = mlp(features=8, hidden=64, classes=3)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    tw = quiet(model, optimizer, {"rules": {"loss_spike": {}}}, interval=10)
    losses: list[float] = []
    train(tw, model, optimizer, batches(x, y, batch_size=16), 800, losses=losses)
    tw.close()
    late = sorted(losses[400:])
    assert late[len(late) // 2] < 0.01 and late[-1] > 30 * late[len(late) // 2]  # a fitted model, a heavy tail
    assert [f for f in tw.findings if f.kind == "loss_spike"] == []
