"""What the Lightning tests share: the kit's classifier (:mod:`tripwire.kit.lightning`, here as
``Task``), networks, data, loaders and Trainer, plus a small CNN on 8x8 images and the `fit`
helper.

Everything is CPU-sized: a run is a few hundred optimizer steps of a model with a few
thousand parameters, seconds of wall time.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from tripwire import LightningTripwire
from tripwire.kit.lightning import Classifier as Task
from tripwire.kit.lightning import Transformer, blobs, loader, mlp, tokens, trainer

__all__ = ["CNN", "Task", "Transformer", "blobs", "fit", "images", "loader", "mlp", "rules_fired", "tokens",
           "trainer", "tripwire"]


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


def fit(task: pl.LightningModule, train: DataLoader, val: DataLoader | None = None, *,
        callback: LightningTripwire | None = None, max_steps: int = 200, **kwargs: object) -> LightningTripwire:
    """Train ``task`` with ``callback`` (default: the default config) and return the callback."""
    callback = callback if callback is not None else tripwire()
    trainer(callbacks=[callback], max_steps=max_steps, **kwargs).fit(task, train, val)
    return callback


def rules_fired(callback: LightningTripwire) -> set[str]:
    return {f.rule for f in callback.findings}
