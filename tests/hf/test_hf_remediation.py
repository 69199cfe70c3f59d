"""The remediations under the Hugging Face Trainer, with real fine-tuning of a tiny BERT: ``skip_step``
and ``rollback`` leave a poisoned step's update out, ``reduce_lr`` rescues a learning rate that is
too high, and a sharded training state (FSDP, DeepSpeed) refuses what cannot be done to it.

The poison: the classifier's logits of one training step are multiplied by -1000 (every prediction
confidently wrong, as with flipped labels). With the Trainer's default clipping (``max_grad_norm=1``)
AdamW takes such a step in stride (eval loss +8%); without clipping it ends the run's learning (eval
loss at chance). So these runs train without clipping, where the fault does its damage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
sys.path.insert(0, str(Path(__file__).parent))

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from hf_kit import bert, train
from tripwire import ConfigError
from tripwire.callbacks.torch.unwrap import inner_optimizer
from tripwire.transformers import TripwireCallback

POISONED = 80


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, whatever the machine: when and how far a run blows up moves with the order
    of float sums, which follows the thread count (at 2 threads the LR of 5e-3 ends at 0.045, not 0.17)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
CHANCE = 0.69  # the eval loss of a model that learned nothing (ln 2)


def fine_tune(config, tmp_path, *, poison: bool, lr: float = 3e-4, steps: int = 200, extra=()):
    """Fine-tune :func:`hf_kit.bert` without gradient clipping, step ``POISONED`` poisoned when
    ``poison``; the eval loss afterwards and the callback (None without a config)."""
    model, forwards = bert(), []

    def poisoning(module, args, output):
        if module.training:
            forwards.append(None)
            if poison and len(forwards) == POISONED + 1:
                return output * -1000
        return output

    model.classifier.register_forward_hook(poisoning)
    cb = TripwireCallback(config, interval=10, log_dir=False) if config is not None else None
    trainer = train([*extra, *([cb] if cb else [])], tmp_path, steps=steps, eval_steps=None, model=model,
                    lr=lr, max_grad_norm=0)
    return trainer.evaluate()["eval_loss"], cb


def test_skip_step_leaves_the_poisoned_update_out(tmp_path):
    clean, _ = fine_tune(None, tmp_path, poison=False)
    damaged, _ = fine_tune(None, tmp_path, poison=True)
    assert clean < 0.1 and damaged > 0.9 * CHANCE  # the poisoned step alone ends the learning
    config = {"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}}}
    saved, cb = fine_tune(config, tmp_path, poison=True)
    assert saved == pytest.approx(clean, rel=0.1)
    spike, effect = cb.findings
    assert (spike.kind, spike.step, effect.kind) == ("loss_spike", POISONED, "skip_step_effect")
    assert spike.evidence["steps_skipped"] == 1.0


def test_rollback_restores_the_state_kept_before_the_poisoned_step(tmp_path):
    clean, _ = fine_tune(None, tmp_path, poison=False)
    config = {"rules": {"loss_spike": {"actions": ["alert", {"rollback": {"every": 50}}]}}}
    restored, cb = fine_tune(config, tmp_path, poison=True)
    spike, rollback, effect = cb.findings
    assert (spike.kind, spike.step) == ("loss_spike", POISONED)
    assert (rollback.kind, rollback.step) == ("rollback", POISONED)
    assert rollback.evidence["restored_step"] == 50  # the state after step 50's update
    assert rollback.evidence["skipped"] == [51, POISONED]
    assert effect.kind == "rollback_effect"
    assert restored < 0.1 and restored == pytest.approx(clean, abs=0.05)


class RatesInUse(TrainerCallback):
    """Per optimizer step, the rate the optimizer updated with: read by a step post-hook registered
    before tripwire's, so it runs before tripwire puts the scheduler's rate back."""

    def __init__(self) -> None:
        self.used: list[float] = []

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        inner_optimizer(optimizer).register_step_post_hook(
            lambda o, a, k: self.used.append(o.param_groups[0]["lr"]))


def test_reduce_lr_rescues_a_learning_rate_that_is_too_high(tmp_path):
    """At 5e-3 without clipping the fine-tuning fits, then blows up around step 150 (eval loss 0.17
    instead of 0.001)."""
    too_high, _ = fine_tune(None, tmp_path, poison=False, lr=5e-3, steps=300)
    config = {"rules": {"loss_spike": {"actions": ["alert", {"reduce_lr": {"factor": 0.1}}]}}}
    rates = RatesInUse()
    rescued, cb = fine_tune(config, tmp_path, poison=False, lr=5e-3, steps=300, extra=[rates])
    assert too_high > 0.05 and rescued < 0.2 * too_high
    done = next(f for f in cb.findings if f.kind == "reduce_lr")
    assert done.evidence["lr_before"] == 5e-3 and done.evidence["lr_after"] == pytest.approx(5e-4)
    assert set(rates.used[:done.step + 1]) == {5e-3}
    assert rates.used[done.step + 1:] == [pytest.approx(5e-4)] * (299 - done.step)


@pytest.mark.parametrize("action", ["skip_step", "rollback"])
def test_a_sharded_state_refuses_what_cannot_be_done_to_it(tmp_path, action):
    """Under FSDP the gradients and states are shards: ``skip_step`` and ``rollback`` are refused when
    training starts, before anything is hooked; ``reduce_lr`` (the optimizer's rates) is not."""
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fsdp=True, report_to=[])
    cb = TripwireCallback({"rules": {"loss_spike": {"actions": [action]}}}, log_dir=False)
    with pytest.raises(ConfigError, match=rf"cannot carry out {action} under FSDP \(its training state is sharded\)"):
        cb.on_train_begin(args, TrainerState(), TrainerControl(), model=bert())
    assert not cb._training and cb.driver.collector is None
    lowering = TripwireCallback({"rules": {"loss_spike": {"actions": ["reduce_lr"]}}}, log_dir=False)
    lowering.monitor.check_remediations(("reduce_lr",), why="under FSDP")  # what on_train_begin checks
