"""One LightningTripwire for both Lightning packages: ``lightning.pytorch`` and the standalone
``pytorch_lightning``, each alone or both in one process, and ``PLTripwire``, its old name."""

import subprocess
import sys

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import PACKAGES, blobs, fit, lightning, loader, mlp, rules_fired, task_class, tripwire
from tripwire import LightningTripwire

pytestmark = pytest.mark.torch


def dead_task(package):
    net = mlp()
    nn.init.constant_(net[0].bias, -20.0)
    return task_class(package)(net)


@pytest.mark.parametrize("package", PACKAGES)
def test_it_is_a_callback_of_each_package(package):
    assert isinstance(LightningTripwire(log_dir=False), lightning(package).Callback)


def test_pltripwire_is_the_same_class():
    from tripwire.callbacks import lightning as module
    from tripwire.callbacks.pytorch_lightning import PLTripwire

    assert PLTripwire is LightningTripwire is module.PLTripwire


def test_one_class_trains_fires_and_stops_with_both_trainers_in_one_process():
    for package in PACKAGES:
        torch.manual_seed(0)
        cb = tripwire({"rules": {"dead_relu": {"actions": ["alert", "stop"]}}}, interval=2)
        fit(dead_task(package), loader(*blobs(n=256)), callback=cb, max_steps=8)
        assert rules_fired(cb) == {"dead_relu"} and cb.stopped_by.rule == "dead_relu", package


# Refuses one Lightning package at import, as if it were not installed, then trains with the other.
ONLY_ONE = """
import importlib, importlib.abc, sys

refused, package = sys.argv[1], sys.argv[2]

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == refused:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Refuse())

import torch
from torch import nn

from tripwire import LightningTripwire

pl = importlib.import_module(package)
callbacks = [c.__module__ for c in LightningTripwire.__mro__ if c.__name__ == "Callback"]
assert [c.split(".")[0] for c in callbacks] == [package.split(".")[0]], callbacks

class Task(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        nn.init.constant_(self.net[0].bias, -20.0)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.arange(64) % 2)
cb = LightningTripwire({"rules": {"dead_relu": {"actions": ["alert", "stop"]}}}, interval=2, log_dir=False)
pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
           enable_model_summary=False, callbacks=[cb]).fit(Task(), torch.utils.data.DataLoader(data, batch_size=16))
print(cb.stopped_by.rule)
"""


@pytest.mark.parametrize("refused, package", [("pytorch_lightning", "lightning.pytorch"),
                                              ("lightning", "pytorch_lightning")])
def test_with_only_one_package_installed_it_works_with_that_one(refused, package):
    pytest.importorskip(package)
    out = subprocess.run([sys.executable, "-c", ONLY_ONE, refused, package], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "dead_relu", out.stderr[-3000:]
