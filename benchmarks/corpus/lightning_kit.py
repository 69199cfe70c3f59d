"""What the Lightning entries share: a classification task around any network, loaders and a quiet
CPU Trainer (those two from :mod:`tripwire.kit`), and the faults more than one entry plants.

Imported only inside training functions (it imports torch and Lightning).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tripwire.kit.lightning import trainer
from tripwire.kit.torch import loader

__all__ = ["Classifier", "cosine", "fit", "loader", "logits_of", "quiet", "seeded", "warmup_cosine", "warmup_linear"]

Schedule = Callable[[torch.optim.Optimizer, int], Any]


def logits_of(output: Any) -> torch.Tensor:
    """A network's logits, whether it returns a tensor or a Hugging Face output."""
    return output if isinstance(output, torch.Tensor) else output.logits


class Classifier(pl.LightningModule):
    """Cross-entropy classification around any network; logs ``val_loss`` in validation.

    ``train_only`` names the submodule whose parameters the optimizer gets (the others keep
    ``requires_grad`` and gradients but are never updated: the "frozen by mistake" fault);
    ``schedule(optimizer, total_steps)`` returns a per-step LR scheduler.
    """

    def __init__(self, net: nn.Module, lr: float = 1e-3, *, optimizer: str = "adamw", weight_decay: float = 0.0,
                 schedule: Schedule | None = None, total_steps: int = 0, train_only: str | None = None) -> None:
        super().__init__()
        self.net, self.lr, self.optimizer_name, self.weight_decay = net, lr, optimizer, weight_decay
        self.schedule, self.total_steps, self.train_only = schedule, total_steps, train_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.net(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        params = self.net.get_submodule(self.train_only).parameters() if self.train_only else self.parameters()
        if self.optimizer_name == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.schedule(opt, self.total_steps),
                                                   "interval": "step"}}


def warmup_linear(warmup_share: float = 0.1) -> Schedule:
    """Linear warm-up over ``warmup_share`` of the steps, then linear decay to 0 (BERT's)."""
    def make(opt: torch.optim.Optimizer, total: int) -> Any:
        from transformers import get_linear_schedule_with_warmup

        return get_linear_schedule_with_warmup(opt, int(warmup_share * total), total)
    return make


def warmup_cosine(warmup_share: float = 0.1) -> Schedule:
    """Linear warm-up over ``warmup_share`` of the steps, then cosine decay to 0 (ViT's)."""
    def make(opt: torch.optim.Optimizer, total: int) -> Any:
        from transformers import get_cosine_schedule_with_warmup

        return get_cosine_schedule_with_warmup(opt, int(warmup_share * total), total)
    return make


def cosine(opt: torch.optim.Optimizer, total: int) -> Any:
    """Cosine annealing to 0 over the run."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Lightning's banners and the usual CPU warnings off; tripwire's summary still prints."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "pytorch_lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def fit(task: pl.LightningModule, train: DataLoader, val: DataLoader | None, make_callback: Callable[..., Any], *,
        max_steps: int, val_every: int | None = None, seed: int = 0, **trainer_args: Any) -> Any:
    """Train ``task`` for ``max_steps`` optimizer steps on CPU with the runner's callback; validate
    every ``val_every`` batches (default: every epoch). Returns the callback."""
    callback = make_callback()
    options: dict[str, Any] = {}
    if val_every is not None:
        options.update(val_check_interval=val_every, check_val_every_n_epoch=None)
    options.update(trainer_args)
    with quiet():
        trainer([callback], max_steps, **options).fit(task, train, val)
    return callback


def seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
