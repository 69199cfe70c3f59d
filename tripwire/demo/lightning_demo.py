"""The Lightning demo: the kit's small classifier (:mod:`tripwire.kit`) with four planted faults.

The data are imbalanced (one class is 90% of the labels) and one feature is on a raw scale
(an age in years: mean 50, std 20); the second hidden layer starts with a bias of -20, so its ReLUs never fire. With
the default rules plus `dead_relu` set to stop, tripwire reports the data problems, the dead layer
and what follows from it (its weights never change, its gradients are zero), then stops training.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from tripwire.callbacks.lightning import LightningTripwire
from tripwire.kit.lightning import Classifier, trainer
from tripwire.kit.torch import mlp

CLASS_SHARES = (0.90, 0.06, 0.03, 0.01)
CONFIG = {
    "interval": 5,
    "rules": None,  # filled below: the default set plus dead_relu with stop
}


def make_data(n: int, seed: int) -> TensorDataset:
    """Imbalanced 4-class data; feature 3 is in raw units (mean 50, std 20)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(CLASS_SHARES), size=n, p=CLASS_SHARES)
    centers = rng.normal(0, 1.5, size=(len(CLASS_SHARES), 16))
    x = centers[y] + rng.normal(0, 1, size=(n, 16))
    x[:, 3] = x[:, 3] * 20 + 50
    return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's start-up notes (accelerators, a logger tip) and a deprecation warning it triggers
    in torch, left out of the demo's output."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                                                    "lightning_fabric")]  # either package logs its notes
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*treespec.*")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def run(out_dir: Path) -> dict:
    """Train (a few seconds on a CPU) and return what tripwire found."""
    from tripwire.config import Config
    from tripwire.registry import builtin_rules

    torch.manual_seed(0)
    rules = {kind: {} for kind, cls in builtin_rules().items() if cls.in_default_set and "torch" in cls.frameworks}
    # dead_relu stops training; its patience lets the data rules (which wait for 500 samples) speak first
    rules["dead_relu"] = {"patience": 8, "actions": ["alert", "stop"]}
    callback = LightningTripwire(Config.load({**CONFIG, "rules": rules, "log_dir": str(out_dir)}))
    callback.monitor.print_summary = False  # run_demo prints it with the report
    train = DataLoader(make_data(8192, 1), batch_size=128, shuffle=True)
    val = DataLoader(make_data(1024, 2), batch_size=256)
    print("tripwire demo: training a 4-class MLP with planted faults (imbalanced labels, an unscaled feature, "
          "a dead ReLU layer); dead_relu is set to stop training.")
    model = Classifier(mlp(16, hidden=64, classes=4, dead=1), lr=1e-3, optimizer="adam")  # the second layer is dead
    with quiet_lightning():
        fitting = trainer([callback], max_steps=-1, max_epochs=3, default_root_dir=str(out_dir),
                          val_check_interval=32)
        fitting.fit(model, train, val)
    return {"findings": callback.findings, "stopped_by": callback.stopped_by, "monitor": callback.monitor,
            "record": callback.monitor.record_path and str(Path(callback.monitor.record_path).parent),
            "steps": fitting.global_step}
