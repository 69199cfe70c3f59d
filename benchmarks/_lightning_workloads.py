"""Models, synthetic data and a bare Trainer shared by the Lightning benchmarks.

Used by ``overhead_lightning.py`` and ``gpu_check.py``; not a test module, not part of the
package. :data:`SCALES` holds an MLP, a CNN and a small transformer at three sizes: ``quick``
(the smoke test), ``cpu`` (the CPU benchmark) and ``gpu`` (an H200-class device). Batches are
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers.logger import DummyLogger
from torch import nn


# models ---------------------------------------------------------------------------------------------
class Classifier(pl.LightningModule):
    """Cross-entropy classification around any ``nn.Module``; ``val_loss`` in validation."""

    def __init__(self, net: nn.Module, lr: float = 1e-3, optimizer: str = "adam") -> None:
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
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.lr)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def mlp(features: int, hidden: Sequence[int], classes: int, acts: Sequence[type[nn.Module]] = (nn.ReLU,)) -> nn.Module:
    """Linear layers, each hidden one followed by its own activation module (cycling ``acts``)."""
    layers: list[nn.Module] = []
    width = features
    for i, h in enumerate(hidden):
        layers += [nn.Linear(width, h), acts[i % len(acts)]()]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def cnn(channels: int, c1: int, c2: int, size: int, classes: int) -> nn.Module:
    """Two conv + ReLU + max-pool blocks and a two-layer head, for ``(N, channels, size, size)``."""
    side = ((size - 2) // 2 - 2) // 2
    return nn.Sequential(nn.Conv2d(channels, c1, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * side * side, 4 * c2), nn.ReLU(),
                         nn.Linear(4 * c2, classes))


class Transformer(nn.Module):
    """Token embedding, ``layers`` encoder layers (ReLU modules, so activation hooks see them), mean pooling."""

    def __init__(self, vocab: int, dim: int, layers: int, heads: int, classes: int = 2, bias: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0, batch_first=True,
                                       activation=nn.ReLU(), bias=bias) for _ in range(layers))
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for layer in self.encoder:
            h = layer(h)
        return self.head(h.mean(1))


# data -----------------------------------------------------------------------------------------------
def vectors(n: int, features: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized features with labels from a fixed random linear map (learnable, balanced enough)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x @ torch.randn(features, classes, generator=g)).argmax(1)
    return x, y


def images(n: int, channels: int, size: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] whose class is the brightest of ``classes`` horizontal bands."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.rand(n, channels, size, size, generator=g) * 0.5
    band = size // classes
    for c in range(classes):
        x[y == c, :, c * band:(c + 1) * band] += 0.5
    return x, y


def tokens(n: int, length: int, vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids with a padded tail (id 0); the class is whether token 1 or 2 was sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    ids = torch.randint(3, vocab, (n, length), generator=g)
    ids = torch.where(torch.rand(n, length, generator=g) < 0.2, (y + 1).unsqueeze(1), ids)
    ids[:, length - length // 5:] = 0
    return ids, y


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
    """A model and its data: ``net()`` builds the model, ``data(n)`` makes ``n`` samples."""

    name: str
    net: Callable[[], nn.Module]
    data: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    batch: int
    distinct: int = 8  # different batches; a loader cycles through them

    def loader(self, batches: int, device: str = "cpu") -> Batches:
        """``batches`` batches on ``device``, the same ones for every variant (made once, then cached)."""
        key = (self.name, self.batch, self.distinct, self.data, str(device))  # the function itself: no id reuse
        if key not in _BATCHES:
            x, y = self.data(self.batch * self.distinct)
            x, y = x.to(device), y.to(device)
            _BATCHES[key] = [(x[i * self.batch:(i + 1) * self.batch], y[i * self.batch:(i + 1) * self.batch])
                             for i in range(self.distinct)]
        return Batches(_BATCHES[key], batches)


_BATCHES: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}


SCALES: dict[str, dict[str, Workload]] = {
    "quick": {
        "mlp": Workload("mlp", lambda: mlp(32, [32, 16], 4), lambda n: vectors(n, 32, 4), 16),
        "cnn": Workload("cnn", lambda: cnn(1, 4, 8, 12, 3), lambda n: images(n, 1, 12, 3), 8),
        "transformer": Workload("transformer", lambda: Transformer(50, 16, 1, 2), lambda n: tokens(n, 8, 50), 8),
    },
    "cpu": {
        "mlp": Workload("mlp", lambda: mlp(784, [512, 256], 10), lambda n: vectors(n, 784, 10), 128),
        "cnn": Workload("cnn", lambda: cnn(1, 32, 64, 28, 10), lambda n: images(n, 1, 28, 10), 32),
        "transformer": Workload("transformer", lambda: Transformer(1000, 64, 2, 4), lambda n: tokens(n, 32, 1000),
                                16),
    },
    "gpu": {
        "mlp": Workload("mlp", lambda: mlp(256, [4096, 4096, 4096], 10), lambda n: vectors(n, 256, 10), 1024),
        "cnn": Workload("cnn", lambda: cnn(3, 64, 128, 64, 10), lambda n: images(n, 3, 64, 10), 256),
        "transformer": Workload("transformer", lambda: Transformer(8000, 512, 4, 8), lambda n: tokens(n, 256, 8000),
                                32),
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
    return pl.Trainer(accelerator="gpu" if torch.device(device).type == "cuda" else "cpu", devices=1,
                      precision=precision, max_steps=max_steps, logger=DummyLogger(), log_every_n_steps=1,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=val_batches, callbacks=callbacks,
                      default_root_dir=root)
