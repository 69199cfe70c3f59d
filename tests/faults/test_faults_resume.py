"""Item 5: a Lightning run that dies mid-way and resumes from its last checkpoint ends with the
same findings as the run that was never interrupted, and its run record continues.

The run is preempted (an exception) in the middle of epoch 3; ``ModelCheckpoint`` saved step 32,
the last batch of epoch 2 (``every_n_train_steps``: an ``every_n_epochs`` checkpoint makes
Lightning replay one batch on resume, and a plain DataLoader cannot resume mid-epoch, so either
would change the data the resumed run sees).

The model has faults that fire before the checkpoint (``poor_initialization`` at step 0),
between the checkpoint and the crash (``small_updates``, patience spanning the checkpoint) and
after it (``unchanged_tensor``, ``class_imbalance``), so every kind of rule state, and the
collector's memory of the previous weights, has to survive the checkpoint.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from figures import check
from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire
from tripwire.record import Run

pytestmark = pytest.mark.torch

BATCHES = 16  # per epoch
STEPS = 5 * BATCHES
CRASH_AT = 2 * BATCHES + 7  # mid epoch 3; the last checkpoint is the end of epoch 2 (step 32)
CONFIG = {"interval": 3, "rules": {
    "poor_initialization": {},
    "small_updates": {"patience": 12},  # samples at steps 0..33: fires between checkpoint and crash
    "unchanged_tensor": {"patience": 14},  # steps 3..42: fires after the crash
    "class_imbalance": {"threshold": 1.5, "min_samples": 400},
    "loss_not_decreasing": {},
}}


class Faulty(Task):
    """An MLP with a constant-initialized first layer, a head trained at lr 1e-9 (small updates)
    and a layer whose gradient is zero (unchanged)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(mlp())
        nn.init.constant_(self.net[0].weight, 0.05)
        self.unused = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0.0 * self.unused(x[:, :4]).sum()

    def configure_optimizers(self):
        head = list(self.net[-1].parameters())
        rest = [p for p in self.parameters() if all(p is not h for h in head)]
        return torch.optim.SGD([{"params": rest}, {"params": head, "lr": 1e-9}], lr=0.05, momentum=0.9)


class Preempt(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == CRASH_AT:
            raise RuntimeError("preempted")


def data():
    x, y = blobs(n=BATCHES * 16, seed=3)
    y[: BATCHES * 16 // 4] = 0  # class 0 grows to half of the labels: imbalanced once enough are seen
    return loader(x, y, batch_size=16, shuffle=False)


def keyed(findings) -> list[tuple]:
    return [(f.rule, f.step, f.subject, f.message) for f in findings]


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    whole = tripwire(CONFIG, log_dir=tmp_path / "whole")
    trainer([whole], max_steps=STEPS).fit(Faulty(), data())

    runs = tmp_path / "runs"
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=BATCHES, save_top_k=-1)
    first = tripwire(CONFIG, log_dir=runs)
    with pytest.raises(RuntimeError, match="preempted"):
        trainer([first, saver, Preempt()], max_steps=STEPS, enable_checkpointing=True).fit(Faulty(), data())
    first_dirs = sorted(p.name for p in runs.iterdir())
    with Run.latest(runs) as record:
        before = {name: record.series(name) for name in record.names()}

    second = tripwire(CONFIG, log_dir=runs)
    trainer([second, ModelCheckpoint(dirpath=tmp_path / "ckpt2")], max_steps=STEPS, enable_checkpointing=True).fit(
        Faulty(), data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")

    expected, got = keyed(whole.findings), keyed(second.findings)
    fired = {f[0] for f in expected}
    assert {"poor_initialization", "small_updates", "unchanged_tensor", "class_imbalance"} <= fired, expected
    assert any(f[1] < 2 * BATCHES for f in expected) and any(f[1] > CRASH_AT for f in expected)
    check("resume.finding_mismatches", len(set(expected) ^ set(got)) + abs(len(expected) - len(got)))
    assert got == expected

    check("resume.record_directories", len(list(runs.iterdir())))
    assert sorted(p.name for p in runs.iterdir()) == first_dirs
    with Run.latest(runs) as resumed, Run.latest(tmp_path / "whole") as reference:
        assert len(resumed.meta["resumed_at"]) == 1
        lost = 0
        for name, (steps, _values) in before.items():
            now_steps, _ = resumed.series(name)
            lost += len(set(steps.tolist()) - set(now_steps.tolist()))
        check("resume.rows_lost", lost)
        assert resumed.names() == reference.names()
        for name in reference.names():  # steps repeated after the checkpoint keep the resumed values
            for subject in reference.subjects(name):
                ref_steps, ref_values = reference.series(name, subject)
                steps, values = resumed.series(name, subject)
                assert steps.tolist() == ref_steps.tolist(), (name, subject)
                if name == "loss":  # the mean since the previous sample: at step 33 it lost step 31's loss
                    at = steps.tolist().index(33)
                    values, ref_values = np.delete(values, at), np.delete(ref_values, at)
                np.testing.assert_allclose(values, ref_values, rtol=1e-4, atol=1e-7, err_msg=f"{name} {subject}")
        assert keyed(resumed.findings) == expected  # small_updates fired at step 33 twice: listed once
