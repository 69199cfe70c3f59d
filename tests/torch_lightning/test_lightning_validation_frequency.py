"""Validating more often does not make the validation rules fire earlier (real Lightning runs).

``val_check_interval=0.5`` validates twice per epoch; the rules' ``patience`` counts epochs of
validations, so the same training judged twice as often reaches the same verdict at the same
point: silent where one validation per epoch is silent, and a planted fault still fires.
"""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, IterableDataset

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire

pytestmark = pytest.mark.torch

EPOCH = 16  # batches of 32 in 512 samples


def run(val_check_interval: float, val_labels_swapped: bool = False, epochs: int = 6):
    """A classifier of three blobs learning slowly (SGD at 0.003: at the end of its first epoch
    one class is still mostly predicted as another); optionally classes 1 and 2 swapped in
    validation. Returns the callback and the final validation accuracy."""
    torch.manual_seed(0)
    x, y = blobs(n=512, spread=1.0)
    xv, yv = blobs(n=384, seed=1, spread=1.0)
    if val_labels_swapped:
        yv = torch.tensor([0, 2, 1])[yv]
    task = Task(mlp(), lr=0.003)
    cb = fit(task, loader(x, y), loader(xv, yv, shuffle=False), max_steps=epochs * EPOCH,
             val_check_interval=val_check_interval)
    with torch.no_grad():
        accuracy = (task(xv).argmax(1) == yv).float().mean().item()
    return cb, accuracy


def confusion_findings(cb) -> list:
    return [(f.step, f.subject) for f in cb.findings if f.rule == "classifier_confusion"]


def test_two_validations_per_epoch_are_silent_where_one_is():
    once, accuracy = run(val_check_interval=1.0)
    assert accuracy > 0.9 and once.findings == []
    twice, _ = run(val_check_interval=0.5)
    assert twice.findings == []  # fired at step 16 when patience counted validations


def test_swapped_classes_fire_after_the_same_training_however_often_validated():
    once, _ = run(val_check_interval=1.0, val_labels_swapped=True, epochs=3)
    twice, _ = run(val_check_interval=0.5, val_labels_swapped=True, epochs=3)
    assert confusion_findings(once) == confusion_findings(twice) == [(32, "2"), (48, "1")]


class Stream(IterableDataset):
    """Batches without a length: Lightning cannot know how long an epoch is."""

    def __iter__(self):
        x, y = blobs(n=512)
        while True:
            yield from zip(x.split(32), y.split(32))


def validation_samples(cb) -> list:
    """Keep every validation sample the callback's monitor processes."""
    kept, process = [], cb.monitor.process

    def keep(sample):
        if "val_loss" in sample.stats:
            kept.append(sample)
        return process(sample)

    cb.monitor.process = keep
    return kept


@pytest.mark.parametrize("interval, expected", [(0.5, [0.5, 0.5]), (4, [0.25, 0.25, 0.25, 0.25])])
def test_validation_samples_carry_the_share_of_an_epoch_trained_since_the_previous_one(interval, expected):
    cb = tripwire({"rules": {"overfit": {}}})
    kept = validation_samples(cb)
    x, y = blobs(n=512)
    fit(Task(mlp()), loader(x, y), loader(*blobs(n=64, seed=1), shuffle=False), callback=cb, max_steps=EPOCH,
        val_check_interval=interval)
    assert [s.scalar("epochs_since_val") for s in kept] == expected


def test_an_epoch_of_unknown_length_leaves_it_out():
    cb = tripwire({"rules": {"overfit": {}}})
    kept = validation_samples(cb)
    fit(Task(mlp()), DataLoader(Stream(), batch_size=None), loader(*blobs(n=64, seed=1), shuffle=False), callback=cb,
        max_steps=8, val_check_interval=4)
    assert len(kept) == 2 and all(s.scalar("epochs_since_val") is None for s in kept)
