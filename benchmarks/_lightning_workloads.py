"""Workloads and a bare Trainer shared by the Lightning benchmarks.

Used by ``overhead_lightning.py`` and ``gpu_check.py``; not a test module, not part of the
package. :data:`SCALES` holds an MLP, a CNN and a small transformer at three sizes: ``quick``
(the smoke test), ``cpu`` (the CPU benchmark) and ``gpu`` (an H200-class device); the MLP, the
transformer, the classifier around them and the data come from :mod:`tripwire.kit`. Batches are
made once and cycled (:class:`Batches`), so no data loading happens inside a timed step.

Example:
    >>> wl = SCALES["quick"]["mlp"]
    >>> x, y = next(iter(wl.loader(3)))
    >>> tuple(x.shape), tuple(wl.net()(x).shape), len(wl.loader(3))
    ((16, 32), (16, 4), 3)
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers.logger import DummyLogger
from torch import nn

from tripwire.kit import lightning as kit
from tripwire.kit.data import bands, linear_classes
from tripwire.kit.lightning import Classifier
from tripwire.kit.torch import Transformer, mlp, tokens

__all__ = ["SCALES", "Batches", "Classifier", "Transformer", "Workload", "cnn", "mlp", "quiet", "tokens",
           "trainer"]


# models and data ------------------------------------------------------------------------------------
def cnn(channels: int, c1: int, c2: int, size: int, classes: int) -> nn.Module:
    """Two conv + ReLU + max-pool blocks and a two-layer head, for ``(N, channels, size, size)``."""
    side = ((size - 2) // 2 - 2) // 2
    return nn.Sequential(nn.Conv2d(channels, c1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * side * side, 4 * c2), nn.ReLU(),
                         nn.Linear(4 * c2, classes))


class Batches:
    """``n`` batches cycling through a few pre-built ones: no data loading inside the timed steps.

    An iterable with a length, which Lightning takes as a training or validation loader (a
    plain list would be read as a collection of loaders).
    """

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> None:
        self.batches, self.n = batches, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return (self.batches[i % len(self.batches)] for i in range(self.n))


@dataclass(frozen=True)
class Workload:
    """A model and its data: ``net()`` builds the model, ``data(n)`` makes ``n`` samples (arrays or tensors)."""

    name: str
    net: Callable[[], nn.Module]
    data: Callable[[int], tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]]
    batch: int
    distinct: int = 8  # different batches; a loader cycles through them

    def tensors(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples and their labels as tensors."""
        x, y = self.data(n)
        return torch.as_tensor(x), torch.as_tensor(y)

    def loader(self, batches: int, device: str = "cpu") -> Batches:
        """``batches`` batches on ``device``, the same ones for every variant (made once, then cached)."""
        key = (self.name, self.batch, self.distinct, self.data, str(device))  # the function itself: no id reuse
        if key not in _BATCHES:
            x, y = (t.to(device) for t in self.tensors(self.batch * self.distinct))
            _BATCHES[key] = [(x[i * self.batch:(i + 1) * self.batch], y[i * self.batch:(i + 1) * self.batch])
                             for i in range(self.distinct)]
        return Batches(_BATCHES[key], batches)


_BATCHES: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}


def _images(size: int, classes: int, channels: int = 1) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    return lambda n: bands(n, size, classes, channels, channels_last=False)


SCALES: dict[str, dict[str, Workload]] = {
    "quick": {
        "mlp": Workload("mlp", lambda: mlp(32, [32, 16], 4), lambda n: linear_classes(n, 32, 4), 16),
        "mlp_wide": Workload("mlp_wide", lambda: mlp(32, [64, 64], 4), lambda n: linear_classes(n, 32, 4), 16),
        "cnn": Workload("cnn", lambda: cnn(1, 4, 8, 12, 3), _images(12, 3), 8),
        "transformer": Workload("transformer", lambda: Transformer(50, 16, 1, 2, ff=64), lambda n: tokens(n, 8, 50),
                                8),
    },
    "cpu": {
        "mlp": Workload("mlp", lambda: mlp(784, [512, 256], 10), lambda n: linear_classes(n, 784, 10), 128),
        "mlp_wide": Workload("mlp_wide", lambda: mlp(784, [1024, 1024], 10), lambda n: linear_classes(n, 784, 10),
                             64),
        "cnn": Workload("cnn", lambda: cnn(1, 32, 64, 28, 10), _images(28, 10), 32),
        "transformer": Workload("transformer", lambda: Transformer(1000, 64, 2, 4, ff=256),
                                lambda n: tokens(n, 32, 1000), 16),
    },
    "gpu": {
        "mlp": Workload("mlp", lambda: mlp(256, [4096, 4096, 4096], 10), lambda n: linear_classes(n, 256, 10), 1024),
        "cnn": Workload("cnn", lambda: cnn(3, 64, 128, 64, 10), _images(64, 10, channels=3), 256),
        "transformer": Workload("transformer", lambda: Transformer(8000, 512, 4, 8, ff=2048),
                                lambda n: tokens(n, 256, 8000), 32),
    },
}


# running ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's banners and warnings, tripwire's alerts and end-of-run summary."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric", "tripwire")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", module=r"lightning\..*")
            warnings.filterwarnings("ignore", message=r".*(num_workers|bottleneck|LeafSpec|isinstance)")
            # set_sync_debug_mode("warn") warnings must reach a SyncCounter, whichever module they come from
            warnings.filterwarnings("always", message=r".*synchronizing CUDA operation")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def trainer(max_steps: int, callbacks: list[pl.Callback], device: str = "cpu", precision: str = "32-true",
            val_batches: int = 0, root: str | None = None) -> pl.Trainer:
    """A bare Trainer: a logger that drops what it gets (so ``self.log`` does its usual work every
    step), no checkpoints, progress bar, model summary or sanity validation."""
    return kit.trainer(callbacks, max_steps, accelerator="gpu" if torch.device(device).type == "cuda" else "cpu",
                       precision=precision, logger=DummyLogger(), log_every_n_steps=1, limit_val_batches=val_batches,
                       default_root_dir=root)
