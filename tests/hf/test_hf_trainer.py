"""The Hugging Face Trainer adapter on real fine-tuning runs of a tiny BERT (CPU, seconds each):
silent when healthy, and a planted fault fires, stops the Trainer at the sampled step, and is
in the Trainer's log history."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import torch
from transformers import TrainerCallback

from hf_kit import bert, examples, train, tripwire_entries
from tripwire.errors import RuleTriggered
from tripwire.record import Run
from tripwire.transformers import TripwireCallback


def record(cb: TripwireCallback) -> Run:
    return Run(os.path.dirname(cb.monitor.record_path))


def test_healthy_fine_tuning_is_silent_and_every_statistic_arrives(tmp_path):
    cb = TripwireCallback(log_dir=str(tmp_path / "runs"))
    trainer = train([cb], tmp_path, steps=200)
    assert cb.findings == [] and trainer.state.global_step == 200 and tripwire_entries(trainer) == []
    run = record(cb)
    steps, losses = run.series("loss", None)
    # the default overhead budget: every 10 steps until three samples are measured, then as its cost asks
    assert list(steps)[:3] == [0, 10, 20]
    val_steps, val_losses = run.series("val_loss", None)
    assert list(val_steps) == [50, 100, 150, 200] and val_losses[-1] < 0.1 * losses[0]  # it learned
    # the evaluation forwards paired logits with labels: every eval example counted once per evaluation
    cells = [run.series("confusion", cell)[1] for cell in run.subjects("confusion")]
    assert np.allclose(np.sum(cells, axis=0), 256)
    labels = [run.series("label_count", c)[1] for c in run.subjects("label_count")]  # from the model's kwargs
    # a batch of 32 from every sampled step and every 10th step (the budget's label steps) up to the last sample
    last = int(max(run.series("label_count", c)[0][-1] for c in run.subjects("label_count")))
    assert np.sum(labels) == 32 * len(set(range(0, last + 1, 10)) | {int(s) for s in steps if s <= last})
    assert {"grad_norm", "update_ratio", "token_total", "init_weight_gain"} <= set(run.names())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in trainer.model.modules())  # all removed


def test_a_tiny_learning_rate_fires_small_updates_and_stops_the_trainer(tmp_path):
    cb = TripwireCallback(stop_on=["small_updates"], log_dir=False)
    trainer = train([cb], tmp_path, steps=200, lr=1e-9, eval_steps=None)
    assert cb.stopped_by.rule == "small_updates" and cb.stopped_by.step == 20  # samples 0, 10, 20: patience 3
    assert trainer.state.global_step == 21  # the stopping step ran
    entries = tripwire_entries(trainer)
    assert [e["rule"] for e in entries][:1] == ["small_updates"] and entries[0]["step"] == 20


class PoisonEmbedding(TrainerCallback):
    """A NaN in the word embeddings before optimizer step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.at:
            with torch.no_grad():
                model.bert.embeddings.word_embeddings.weight[8:].fill_(float("nan"))


def test_a_nan_stops_the_trainer_at_the_next_sampled_step(tmp_path):
    cb = TripwireCallback(log_dir=False)  # nonfinite stops by default
    trainer = train([PoisonEmbedding(at=25), cb], tmp_path, steps=200, eval_steps=None)
    assert cb.stopped_by.rule == "nonfinite" and cb.stopped_by.step == 30
    assert trainer.state.global_step == 31
    assert "nonfinite" in [e["rule"] for e in tripwire_entries(trainer)]


def test_imbalanced_labels_are_read_from_the_model_inputs(tmp_path):
    cb = TripwireCallback(stop_on=["class_imbalance"], interval=1, log_dir=False)
    trainer = train([cb], tmp_path, steps=100, eval_steps=None, train_set=examples(2048, positive=0.03))
    assert cb.stopped_by.rule == "class_imbalance" and cb.stopped_by.step == 15  # 16 x 32 labels >= 500
    assert trainer.state.global_step == 16


@pytest.mark.parametrize("accumulation, loss_kwargs", [(1, True), (2, True), (2, False)])
def test_the_training_loss_is_the_trainers_under_gradient_accumulation(tmp_path, accumulation, loss_kwargs):
    model = bert()
    if not loss_kwargs:  # the Trainer then averages the micro-batch losses instead of summing them
        model.accepts_loss_kwargs = False
    cb = TripwireCallback({"rules": {"underfit": {}}}, interval=1, log_dir=str(tmp_path / "runs"))  # needs the loss
    trainer = train([cb], tmp_path, steps=6, eval_steps=None, logging_steps=1, model=model,
                    gradient_accumulation_steps=accumulation, per_device_train_batch_size=16)
    logged = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    losses = record(cb).series("loss", None)[1]
    assert np.allclose(losses, logged, rtol=1e-4)
    assert 0.6 * (accumulation if loss_kwargs else 1) < losses[0] < 0.8 * (accumulation if loss_kwargs else 1)


def test_without_a_model_loss_the_trainers_logged_loss_is_used(tmp_path):
    cb = TripwireCallback({"rules": {"underfit": {}}}, interval=5, log_dir=str(tmp_path / "runs"))
    ce = lambda outputs, labels, num_items_in_batch=None: torch.nn.functional.cross_entropy(outputs.logits, labels)
    trainer = train([cb], tmp_path, steps=30, eval_steps=None, logging_steps=10, compute_loss_func=ce)
    logged = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    steps, losses = record(cb).series("loss", None)  # the Trainer popped the labels: the model gave no loss
    assert list(steps) == [10, 20] and np.allclose(losses, logged[:2])  # logged after steps 9, 19: next flush


def test_checkpoint_then_raise_saves_the_model_and_leaves_train_with_the_hooks_removed(tmp_path):
    cb = TripwireCallback({"rules": {"nonfinite": {"actions": ["checkpoint", "raise"]}}}, log_dir=False)
    model = bert()
    with pytest.raises(RuleTriggered):
        train([PoisonEmbedding(at=5), cb], tmp_path, steps=50, eval_steps=None, model=model)
    assert cb.findings[0].step == 10
    assert cb.monitor.end.describe() == "stopped by rule nonfinite at step 10 (it raised RuleTriggered)"
    assert (tmp_path / "out" / "tripwire_checkpoints" / "tripwire-nonfinite-step10" / "config.json").exists()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
