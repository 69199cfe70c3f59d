"""Tiny Lightning models, synthetic data and a `fit` helper shared by the Lightning tests.

Everything is CPU-sized: a run is a few hundred optimizer steps of a model with a few
thousand parameters, seconds of wall time.

``Task`` and ``trainer`` are ``lightning.pytorch``'s; ``task_class("pytorch_lightning")`` and
``trainer(..., package="pytorch_lightning")`` are the same on the standalone package, and
``fit`` trains a task with the Trainer of its own package.
"""

from __future__ import annotations

import functools
from types import ModuleType

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tripwire import LightningTripwire

#: the two Lightning packages, as tests name them (``lightning`` stands for ``lightning.pytorch``)
PACKAGES = ("lightning", "pytorch_lightning")


def lightning(package: str = "lightning") -> ModuleType:
    """``lightning.pytorch`` or ``pytorch_lightning``; the test is skipped when it is not installed."""
    return pytest.importorskip("lightning.pytorch" if package == "lightning" else package)


def package_of(task: object) -> str:
    """The package, as in :data:`PACKAGES`, whose ``LightningModule`` ``task`` is (or wraps: ``torch.compile``)."""
    module = getattr(task, "_orig_mod", task)
    return next(package for package in PACKAGES if isinstance(module, lightning(package).LightningModule))


@functools.cache
def task_class(package: str = "lightning") -> type:
    """``Task`` on ``package``'s ``LightningModule``."""

    class Task(lightning(package).LightningModule):
        """Classification around any ``nn.Module``; logs ``val_loss`` in validation."""

        def __init__(self, net: nn.Module, lr: float = 0.05, optimizer: str = "sgd") -> None:
            super().__init__()
            self.net, self.lr, self.optimizer_name = net, lr, optimizer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            if self.optimizer_name == "adam":
                return torch.optim.Adam(self.parameters(), lr=self.lr)
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    return Task


Task = task_class()


def mlp(features: int = 8, hidden: int = 32, classes: int = 3, depth: int = 2, act: type[nn.Module] = nn.ReLU,
        ) -> nn.Sequential:
    """``depth`` hidden Linear+activation layers, each with its own activation module."""
    layers: list[nn.Module] = []
    width = features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """Two conv blocks and a linear head for ``(N, 1, 8, 8)`` images."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class TinyTransformer(nn.Module):
    """Embedding + one encoder layer + mean pooling, for ``(N, T)`` token ids."""

    def __init__(self, vocab: int = 50, dim: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True,
                                                  activation=nn.ReLU())
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)).mean(1))


def blobs(n: int = 512, features: int = 8, classes: int = 3, seed: int = 0, spread: float = 1.0,
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized Gaussian blobs: a learnable, balanced classification problem (``seed`` draws
    the points; the class centers are the same for every seed)."""
    centers = torch.randn(classes, features, generator=torch.Generator().manual_seed(1234)) * 1.5
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = centers[y] + spread * torch.randn(n, features, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    return x, y


def images(n: int = 384, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, 8, 8)`` images in [0, 1]: horizontal stripes, vertical stripes or a checkerboard."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    patterns = torch.stack([rows % 2 == 0, cols % 2 == 0, (rows + cols) % 2 == 0]).float()[:classes]
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5 + 0.5 * patterns[y].unsqueeze(1)
    return x, y


def tokens(n: int = 384, length: int = 12, vocab: int = 50, pad_share: float = 0.2, seed: int = 0,
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences (pad id 0 at the end) whose class is whether token 1 or 2 dominates."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    ids = torch.randint(3, vocab, (n, length), generator=g)
    marker = (y + 1).unsqueeze(1).expand(n, length)
    ids = torch.where(torch.rand(n, length, generator=g) < 0.3, marker, ids)
    pad = round(pad_share * length)
    if pad:
        ids[:, length - pad:] = 0
    return ids, y


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 32, shuffle: bool = True) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0) if shuffle else None)


def tripwire(config: object = None, **kwargs: object) -> LightningTripwire:
    """A callback that writes no run record unless asked."""
    kwargs.setdefault("log_dir", False)
    return LightningTripwire(config, **kwargs)


def trainer(callbacks: list, max_steps: int = 200, *, package: str = "lightning", **kwargs: object) -> pl.Trainer:
    """A quiet CPU Trainer of ``package``."""
    options = dict(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=-1, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, deterministic=False)
    options.update(kwargs)
    return lightning(package).Trainer(callbacks=callbacks, **options)


def fit(task: pl.LightningModule, train: DataLoader, val: DataLoader | None = None, *,
        callback: LightningTripwire | None = None, max_steps: int = 200, **kwargs: object) -> LightningTripwire:
    """Train ``task`` with ``callback`` (default: the default config) on a Trainer of the task's
    package, and return the callback."""
    callback = callback if callback is not None else tripwire()
    trainer(callbacks=[callback], max_steps=max_steps, package=package_of(task), **kwargs).fit(task, train, val)
    return callback


def rules_fired(callback: LightningTripwire) -> set[str]:
    return {f.rule for f in callback.findings}
