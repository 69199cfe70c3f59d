"""`loss_spike` and `skip_step` under Lightning: the update of a batch with inputs x1000 is left
out (optimizer state untouched), a healthy run trains exactly as without tripwire, and the actions
are checked when the callback is made."""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from lightning_kit import blobs, lightning, loader, mlp, task_class, trainer, tripwire
from tripwire import ConfigError, LightningTripwire

pytestmark = pytest.mark.torch

POISONED = 150
SPIKE = {"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}}}


def poisoned_task(package: str, optimizer: str, poison_at: int | None) -> object:
    """The kit's classifier, whose batch of optimizer step ``poison_at`` has its inputs x1000."""

    class Poisoned(task_class(package)):
        def training_step(self, batch, batch_idx):
            x, y = batch
            if self.global_step == poison_at:
                x = x * 1000
            return nn.functional.cross_entropy(self(x), y)

    torch.manual_seed(0)
    return Poisoned(mlp(features=8, hidden=32, classes=3), lr=0.05 if optimizer == "sgd" else 0.01,
                    optimizer=optimizer)


def fit(config: object | None, poison: bool, *, package: str = "lightning", optimizer: str = "sgd",
        steps: int = 250, **kwargs: object) -> tuple[float, object, LightningTripwire | None]:
    """Train on overlapping blobs; the loss on the whole data set afterwards, the task, the callback."""
    x, y = blobs(512, features=8, classes=3, spread=2.0)
    task = poisoned_task(package, optimizer, POISONED if poison else None)
    callback = tripwire(config, interval=10) if config is not None else None
    trainer([callback] if callback else [], max_steps=steps, package=package, **kwargs).fit(task, loader(x, y))
    with torch.no_grad():
        return nn.functional.cross_entropy(task(x), y).item(), task, callback


@functools.cache
def unmonitored(poison: bool, package: str = "lightning") -> tuple[float, object]:
    """:func:`fit` without tripwire: the same for every test that compares with it."""
    loss, task, _ = fit(None, poison, package=package)
    return loss, task


@pytest.mark.parametrize("package", ["lightning", "pytorch_lightning"])
def test_skip_step_leaves_the_poisoned_batch_out(package):
    (clean, _), (damaged, _) = unmonitored(False, package), unmonitored(True, package)
    skipped, _, callback = fit(SPIKE, poison=True, package=package)
    assert damaged > 2 * clean
    assert abs(skipped - clean) < 0.05 * clean
    finding, effect = callback.findings  # the loss and the gradient norm spiked at that step: one finding
    assert finding.rule == "loss_spike" and finding.subject == "loss, grad_norm" and finding.step == POISONED
    assert finding.evidence["last_spike_step"] == POISONED and finding.evidence["steps_skipped"] == 1
    assert (effect.kind, effect.step) == ("skip_step_effect", POISONED + 10)
    assert effect.evidence["loss_after"] < 1.5 * effect.evidence["loss_before"]


def test_adam_state_is_untouched_by_the_skipped_step():
    _, task, callback = fit(SPIKE, poison=True, optimizer="adam", steps=200)
    assert [f.evidence["steps_skipped"] for f in callback.findings if f.kind == "loss_spike"] == [1]
    optimizer = task.optimizers().optimizer
    assert {float(optimizer.state[p]["step"]) for p in task.parameters()} == {199.0}


def test_a_healthy_run_with_skip_step_trains_exactly_as_without_tripwire():
    _, plain = unmonitored(False)
    _, watched, callback = fit(SPIKE, poison=False)
    assert callback.findings == []
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)


def test_the_loss_is_judged_before_the_update_under_gradient_accumulation():
    """Only the loss is judged: its spike alone leaves the update out (Lightning hands the loss over
    in on_before_backward, before the optimizer step)."""
    config = {"rules": {"loss_spike": {"series": ["loss"], "actions": ["skip_step"]}}}
    _, _, callback = fit(config, poison=True, steps=200, accumulate_grad_batches=2)
    finding, _ = callback.findings  # the spike, and what followed it
    assert finding.subject == "loss" and finding.evidence["steps_skipped"] == 1
    assert finding.evidence["last_spike_step"] == POISONED


def test_skip_step_on_a_rule_judged_at_samples_only_is_a_config_error():
    with pytest.raises(ConfigError, match=r"rules\.exploding_gradient\.actions\.1.*cannot skip_step.*loss_spike"):
        LightningTripwire({"rules": {"exploding_gradient": {"actions": ["alert", "skip_step"]}}}, log_dir=False)


def test_reduce_lr_lowers_the_rate_lightnings_optimizer_steps_with(tmp_path):
    """The spike of step 150 halves the rate from the next step on; the optimizer's configured rate
    stays (a scheduler would keep its own), and a checkpoint carries the scale."""
    used: list[float] = []

    class Rates(lightning("lightning").Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # inside the step: the rate in use
            used.append(optimizer.param_groups[0]["lr"])

    config = {"rules": {"loss_spike": {"actions": ["alert", "skip_step", {"reduce_lr": {"factor": 0.5}}]}}}
    x, y = blobs(512, features=8, classes=3, spread=2.0)
    task, callback = poisoned_task("lightning", "sgd", POISONED), tripwire(config, interval=10)
    trainer([callback, Rates()], max_steps=200).fit(task, loader(x, y))
    spike, done, *effects = callback.findings
    assert (spike.kind, done.kind, done.step) == ("loss_spike", "reduce_lr", POISONED)
    assert sorted(f.kind for f in effects) == ["reduce_lr_effect", "skip_step_effect"]
    assert (done.evidence["lr_before"], done.evidence["lr_after"]) == (0.05, 0.025)
    assert set(used[:POISONED + 1]) == {0.05} and set(used[POISONED + 1:]) == {0.025}
    assert task.optimizers().optimizer.param_groups[0]["lr"] == 0.05
    assert callback.state_dict()["collector"]["lr_scale"] == {"scale": 0.5, "min_lr": 0.0}
