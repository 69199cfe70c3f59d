"""What the Lightning tests share: the kit's classifier and Trainer (:mod:`tripwire.kit.lightning`,
the classifier here as ``Task``), its networks, data and loaders (:mod:`tripwire.kit.torch`), plus
a small CNN on 8x8 images and the `fit` helper.

Everything is CPU-sized: a run is a few hundred optimizer steps of a model with a few
thousand parameters, seconds of wall time.

``Task`` and ``trainer`` are ``lightning.pytorch``'s; ``task_class("pytorch_lightning")`` and
``trainer(..., package="pytorch_lightning")`` are the same on the standalone package, and
``fit`` trains a task with the Trainer of its own package.
"""

from __future__ import annotations

from types import ModuleType

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tripwire import LightningTripwire
from tripwire.kit import lightning as kit
from tripwire.kit.torch import Transformer as TinyTransformer
from tripwire.kit.torch import blobs, loader, mlp, tokens

__all__ = ["CNN", "PACKAGES", "Task", "TinyTransformer", "blobs", "fit", "images", "lightning", "loader", "mlp",
           "package_of", "rules_fired", "task_class", "tokens", "trainer", "tripwire"]

#: the two Lightning packages, as tests name them (``lightning`` stands for ``lightning.pytorch``)
PACKAGES = ("lightning", "pytorch_lightning")


def lightning(package: str = "lightning") -> ModuleType:
    """``lightning.pytorch`` or ``pytorch_lightning``; the test is skipped when it is not installed."""
    return pytest.importorskip("lightning.pytorch" if package == "lightning" else package)


def package_of(task: object) -> str:
    """The package, as in :data:`PACKAGES`, whose ``LightningModule`` ``task`` is (or wraps: ``torch.compile``)."""
    module = getattr(task, "_orig_mod", task)
    return next(package for package in PACKAGES if isinstance(module, lightning(package).LightningModule))


def task_class(package: str = "lightning") -> type:
    """``Task`` on ``package``'s ``LightningModule``."""
    lightning(package)  # skips the test when the package is not installed
    return kit.classifier_class(package)


Task = task_class()


class CNN(nn.Module):
    """Two conv blocks and a linear head for ``(N, 1, 8, 8)`` images."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def images(n: int = 384, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, 8, 8)`` images in [0, 1]: horizontal stripes, vertical stripes or a checkerboard."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    patterns = torch.stack([rows % 2 == 0, cols % 2 == 0, (rows + cols) % 2 == 0]).float()[:classes]
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5 + 0.5 * patterns[y].unsqueeze(1)
    return x, y


def tripwire(config: object = None, **kwargs: object) -> LightningTripwire:
    """A callback that writes no run record unless asked."""
    kwargs.setdefault("log_dir", False)
    return LightningTripwire(config, **kwargs)


def trainer(callbacks: list, max_steps: int = 200, *, package: str = "lightning", **kwargs: object) -> pl.Trainer:
    """The kit's quiet CPU Trainer of ``package``."""
    lightning(package)  # skips the test when the package is not installed
    return kit.trainer(callbacks, max_steps, package=package, **kwargs)


def fit(task: pl.LightningModule, train: DataLoader, val: DataLoader | None = None, *,
        callback: LightningTripwire | None = None, max_steps: int = 200, **kwargs: object) -> LightningTripwire:
    """Train ``task`` with ``callback`` (default: the default config) on a Trainer of the task's
    package, and return the callback."""
    callback = callback if callback is not None else tripwire()
    trainer(callbacks=[callback], max_steps=max_steps, package=package_of(task), **kwargs).fit(task, train, val)
    return callback


def rules_fired(callback: LightningTripwire) -> set[str]:
    return {f.rule for f in callback.findings}
