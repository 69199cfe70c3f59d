"""A tiny classifier under Lightning and a quiet CPU Trainer (imports torch and
``lightning.pytorch``; ``classifier_class`` and ``trainer`` take the standalone
``pytorch_lightning`` package too). Its networks and data are in :mod:`tripwire.kit.torch`.

Example:
    >>> from tripwire.kit.torch import blobs, mlp
    >>> x, y = blobs(6, features=4)
    >>> task = Classifier(mlp(features=4, hidden=8, classes=3), lr=1e-3, optimizer="adam")
    >>> tuple(task(x).shape), type(task.configure_optimizers()).__name__
    ((6, 3), 'Adam')
    >>> Classifier(mlp(), optimizer="rmsprop")
    Traceback (most recent call last):
    ValueError: optimizer='rmsprop'; valid: sgd, adam
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam")
#: the two Lightning packages: the name a caller gives -> the module imported
PACKAGES = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}


def lightning(package: str = "lightning") -> ModuleType:
    """``lightning.pytorch`` or the standalone ``pytorch_lightning``."""
    if package not in PACKAGES:
        raise ValueError(f"package={package!r}; valid: {', '.join(PACKAGES)}")
    return importlib.import_module(PACKAGES[package])


@functools.cache
def classifier_class(package: str = "lightning") -> type:
    """:class:`Classifier` on ``package``'s ``LightningModule``."""

    class Classifier(lightning(package).LightningModule):
        """Cross-entropy classification around any ``nn.Module``; logs ``val_loss`` in validation.

        ``optimizer`` is ``"sgd"`` (with ``momentum``) or ``"adam"``.
        """

        def __init__(self, net: nn.Module, lr: float = 0.05, optimizer: str = "sgd", momentum: float = 0.9,
                     ) -> None:
            super().__init__()
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"optimizer={optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
            self.net, self.lr, self.optimizer_name, self.momentum = net, lr, optimizer, momentum

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            if self.optimizer_name == "adam":
                return torch.optim.Adam(self.parameters(), lr=self.lr)
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)

    return Classifier


#: the classifier on ``lightning.pytorch``
Classifier = classifier_class()


def trainer(callbacks: list, max_steps: int = 200, *, package: str = "lightning", **kwargs: Any) -> pl.Trainer:
    """A quiet CPU Trainer of ``package``: no logger, checkpoints, progress bar, model summary or
    sanity validation; ``kwargs`` override any option."""
    options: dict[str, Any] = dict(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=-1, logger=False,
                                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                   num_sanity_val_steps=0, deterministic=False)
    options.update(kwargs)
    return lightning(package).Trainer(callbacks=callbacks, **options)
