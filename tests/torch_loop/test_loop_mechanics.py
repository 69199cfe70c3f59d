"""How the plain loop meets real training code: gradient accumulation, GradScaler, torch.compile,
the context manager, and failures of its own parts (fail-open)."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from torch import nn

from loop_kit import batches, blobs, mlp, quiet, train
from tripwire.callbacks.torch.params import ParamProbe
from tripwire.torch import Tripwire

pytestmark = pytest.mark.torch

NAN_AT = lambda onset: lambda step, x: x * float("nan") if step >= onset else x


def watched(tw):
    tw.samples, process = [], tw.monitor.process
    tw.monitor.process = lambda sample: (tw.samples.append(sample), process(sample))[1]
    return tw


def hooks_left(model, optimizer) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) + len(
        optimizer._optimizer_step_pre_hooks) + len(optimizer._optimizer_step_post_hooks)


def test_gradient_accumulation_counts_optimizer_steps_and_samples_every_micro_batch_of_a_sampled_step():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tw = watched(quiet(model, optimizer, {"interval": 3, "rules": {"nonfinite": {}, "class_imbalance": {}}}))
    stopped_at = train(tw, model, optimizer, batches(x, y, batch_size=8), steps=40, accumulate=4, fault=NAN_AT(10))
    tw.close()
    assert stopped_at == tw.stopped_by.step == 12 and tw.steps == 13  # the first sampled step >= 10, completed
    counted = [sum(s.stats["label_count"].values()) for s in tw.samples if "label_count" in s.stats]
    assert counted and set(counted) == {32.0}  # the labels of the 4 micro-batches of each sampled step
    assert sorted(s.step for s in tw.samples if "grad_nonfinite" in s.stats) == [0, 3, 6, 9, 12]


def test_grad_scaler_gradients_are_unscaled_and_skipped_steps_count():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 24)  # fp16 overflows at first: skipped steps
    tw = watched(quiet(model, optimizer, {"interval": 2, "rules": {"nonfinite": {}, "exploding_gradient": {}}},
                       scaler=scaler))
    data, taken = batches(x, y), 0
    for _ in range(30):
        xb, yb = next(data)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(xb), yb)
        scaler.scale(loss).backward()
        before = [p.detach().clone() for p in model.parameters()]
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        taken += any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
        tw.step(loss, inputs=xb, labels=yb)
    tw.close()
    assert tw.findings == [] and tw.steps == 30 and 0 < taken < 30  # skipped steps count, and are no fault
    norms = [s.stats["grad_global_norm"][None] for s in tw.samples if "grad_global_norm" in s.stats]
    assert norms and max(norms) < 100  # unscaled: a scaled norm would be ~1e4 times larger


def test_a_nan_loss_under_grad_scaler_is_caught_although_every_step_is_skipped():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu")
    tw = quiet(model, optimizer, {"interval": 5, "rules": {"nonfinite": {}}}, scaler=scaler)
    data = batches(x, y)
    for _ in range(30):
        xb, yb = next(data)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(xb * float("nan")), yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        if tw.step(loss):
            break
    tw.close()
    assert tw.stopped_by.rule == "nonfinite" and tw.stopped_by.subject == "loss" and tw.stopped_by.step == 0


def test_a_compiled_model_is_watched_through_its_traced_hooks():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    with torch.no_grad():
        model[2].bias.fill_(-20.0)
    compiled = torch.compile(model, backend="aot_eager")  # dynamo traces the hooks; no C++ build needed
    optimizer = torch.optim.SGD(compiled.parameters(), lr=0.05)
    tw = quiet(compiled, optimizer, {"interval": 2, "rules": {"dead_relu": {"actions": ["stop"]}}})
    stopped_at = train(tw, compiled, optimizer, batches(x, y), steps=20)
    tw.close()
    assert tw.model is model and tw.stopped_by.rule == "dead_relu" and tw.stopped_by.subject == "3"
    assert stopped_at == 2 and hooks_left(model, optimizer) == 0  # samples 0 and 2: the rule's patience


def test_the_context_manager_removes_every_hook_and_closes_the_record(tmp_path):
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with Tripwire(model, optimizer, {"interval": 2}, log_dir=tmp_path) as tw:
        assert hooks_left(model, optimizer) > 0
        train(tw, model, optimizer, batches(x, y), steps=6)
    assert hooks_left(model, optimizer) == 0 and tw.monitor._record is None
    with pytest.raises(ValueError, match="the loop's own"), Tripwire(model, optimizer, log_dir=False) as tw:
        raise ValueError("the loop's own error")
    assert hooks_left(model, optimizer) == 0


def fit(steps: int, tripwire_config=None, **kwargs):
    """Seeded training; the weights after it, and the Tripwire (None: trained without one)."""
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tw = None if tripwire_config is None else watched(quiet(model, optimizer, tripwire_config, **kwargs))
    data = batches(x, y)
    for _ in range(steps):
        xb, yb = next(data)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if tw is not None:
            tw.step(loss, inputs=xb, labels=yb)
    if tw is not None:
        tw.close()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), tw


def test_a_failing_part_is_switched_off_and_training_is_unchanged(monkeypatch, caplog):
    untouched, _ = fit(8)

    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(ParamProbe, "before_step", broken)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        weights, tw = fit(8, {"interval": 2})
    assert torch.equal(weights, untouched)
    assert list(tw.monitor.guard.disabled) == ["gradient statistics"]
    assert sum("gradient statistics failed" in r.getMessage() for r in caplog.records) == 1
    seen = {key for s in tw.samples for key in s.stats}
    assert "grad_norm" not in seen and {"loss", "act_dead_frac[inactive_below=0.01]", "label_count"} <= seen


def test_strict_raises_the_failure_instead(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(ParamProbe, "before_step", broken)
    with pytest.raises(RuntimeError, match="planted"):
        fit(8, {"interval": 2}, strict=True)


def test_optimizers_inside_wrappers_are_hooked():
    class Wrapped:  # as Fabric's and Accelerate's optimizers hold the user's
        def __init__(self, optimizer):
            self.optimizer = optimizer

        def step(self):
            self.optimizer.step()

    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tw = quiet(nn.parallel.DataParallel(model), Wrapped(optimizer), {"interval": 1})
    assert tw.model is model and tw.optimizers == [optimizer] and hooks_left(model, optimizer) > 0
    tw.close()


def test_what_tripwire_keeps_between_samples_does_not_grow_with_a_10m_parameter_layer():
    """The default config's buffers (weight snapshot, accumulators) on a model with a 10M- and a
    20M-parameter layer: the same bytes, a small fraction of the model."""
    held = {}
    for width in (10_000, 20_000):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(1000, width), nn.ReLU(), nn.Linear(width, 4))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        x, y = torch.randn(64, 1000), torch.randint(0, 4, (64,))
        tw = quiet(model, optimizer)
        train(tw, model, optimizer, batches(x, y, batch_size=8), steps=12)
        held[width] = tw.driver.collector.held_bytes()
        tw.close()
    model_bytes = 4 * (1000 * 10_000 + 10_000 + 10_000 * 4 + 4)
    assert held[10_000] == held[20_000]
    assert 0 < held[10_000] < model_bytes / 100
