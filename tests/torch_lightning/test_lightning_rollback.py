"""`rollback` under Lightning: a batch with inputs x1000 at step 150 wrecks the model; the
rollback restores the state kept at step 100, training goes on with the next batches, and a
run resumed from a checkpoint taken before the rollback leaves the same steps' updates out."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn

from lightning_kit import blobs, lightning, loader, trainer, tripwire
from test_lightning_spike import POISONED, poisoned_task, unmonitored

pytestmark = pytest.mark.torch

ROLLBACK = {"rules": {"loss_spike": {"actions": ["alert", {"rollback": {"every": 50}}]}}}


class Params:
    """A Lightning callback that copies the parameters at the end of chosen steps (after tripwire's hook)."""

    def __new__(cls, steps):
        class _Params(lightning("lightning").Callback):
            def __init__(self):
                self.at = {}

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if trainer.global_step - 1 in steps:  # global_step counts the update just made
                    self.at[trainer.global_step - 1] = [p.detach().clone() for p in pl_module.parameters()]
        return _Params()


def fit(config, *, steps=250, callbacks=(), log_dir=None, ckpt_path=None, **kwargs):
    x, y = blobs(512, features=8, classes=3, spread=2.0)
    task = poisoned_task("lightning", "sgd", POISONED)
    callback = tripwire(config, interval=10, **({"log_dir": str(log_dir), "run_name": "run"} if log_dir else {}))
    trainer([callback, *callbacks], max_steps=steps, **kwargs).fit(task, loader(x, y), ckpt_path=ckpt_path)
    with torch.no_grad():
        return nn.functional.cross_entropy(task(x), y).item(), task, callback


def test_rollback_restores_the_state_before_the_spike_and_skips_its_batches():
    (clean, _), (damaged, _) = unmonitored(False), unmonitored(True)
    params = Params({100, POISONED})
    loss, _, callback = fit(ROLLBACK, callbacks=[params])
    spike, done, *_ = callback.findings
    assert (spike.kind, spike.step) == ("loss_spike", POISONED)
    assert done.kind == "rollback" and done.evidence["restored_step"] == 100
    assert done.evidence["skipped"] == [101, POISONED]
    for kept, after in zip(params.at[100], params.at[POISONED]):
        assert torch.equal(kept, after)
    assert damaged > 2 * clean and loss < 1.1 * clean


def test_a_run_resumed_from_before_the_rollback_leaves_the_same_updates_out(tmp_path):
    """The first run saves a checkpoint after step 120, then rolls back at 150 to step 100. Resumed
    from that checkpoint into the same record, the second run reads the skipped steps 101-150 from
    it and leaves the updates of 121-150 out: after step 140 its weights are still the checkpoint's."""
    saved = tmp_path / "step120.ckpt"

    class SaveAt120(lightning("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 121:
                trainer.save_checkpoint(saved)

    first_loss, _, first = fit(ROLLBACK, callbacks=[SaveAt120()], log_dir=tmp_path)
    assert [f.evidence["skipped"] for f in first.findings if f.kind == "rollback"] == [[101, POISONED]]
    checkpoint = torch.load(saved, weights_only=False)["state_dict"]
    params = Params({140})  # before the poisoned step, whose spike would roll back to the checkpoint anyway
    resumed_loss, task, _ = fit(ROLLBACK, callbacks=[params], log_dir=tmp_path, ckpt_path=str(saved))
    for name, after in zip([n for n, _ in task.named_parameters()], params.at[140]):
        assert torch.equal(checkpoint[name], after), name
    assert resumed_loss < 1.1 * first_loss


def test_rollback_on_a_rule_that_cannot_drive_it_is_a_config_error():
    from tripwire import ConfigError, LightningTripwire

    with pytest.raises(ConfigError, match=r"rules\.overfit\.actions\.0.*cannot rollback.*exploding_gradient"):
        LightningTripwire({"rules": {"overfit": {"actions": ["rollback"]}}}, log_dir=False)
