"""Tiny torch networks, torch-seeded data and loaders (imports torch only): what the Lightning
tests, the plain-loop tests, the demo and the benchmarks train.

Example:
    >>> net = mlp(features=4, hidden=8, classes=3, dead=1)
    >>> [type(m).__name__ for m in net], set(net[2].bias.tolist())
    (['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear'], {-20.0})
    >>> x, y = blobs(6, features=4)
    >>> tuple(net(x).shape), y.tolist(), len(loader(x, y, batch_size=4))
    ((6, 3), [0, 1, 2, 0, 1, 2], 2)
    >>> ids, y = tokens(4, length=10, vocab=20)
    >>> tuple(Transformer(vocab=20)(ids).shape), ids[:, -2:].tolist(), y.tolist()
    ((4, 2), [[0, 0], [0, 0], [0, 0], [0, 0]], [0, 1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def mlp(features: int = 8, hidden: int | Sequence[int] = 32, classes: int = 3, depth: int = 2,
        act: type[nn.Module] | Sequence[type[nn.Module]] = nn.ReLU, dead: int | None = None) -> nn.Sequential:
    """Linear layers, each hidden one followed by its own activation module.

    ``hidden`` is a width (``depth`` layers of it) or the list of widths; ``act`` an activation
    class or a list of them, cycled. ``dead`` plants a fault: the bias of that hidden layer
    (0-based) is set to -20, so the ReLU after it never fires.
    """
    widths = [hidden] * depth if isinstance(hidden, int) else list(hidden)
    acts = [act] if isinstance(act, type) else list(act)
    layers: list[nn.Module] = []
    width = features
    for i, h in enumerate(widths):
        layers += [nn.Linear(width, h), acts[i % len(acts)]()]
        width = h
    layers.append(nn.Linear(width, classes))
    net = nn.Sequential(*layers)
    if dead is not None:
        nn.init.constant_(net[2 * dead].bias, -20.0)
    return net


class Transformer(nn.Module):
    """Token embedding, ``layers`` encoder layers (ReLU modules, so activation hooks see them),
    mean pooling and a linear head, for ``(N, T)`` token ids."""

    def __init__(self, vocab: int = 50, dim: int = 32, layers: int = 1, heads: int = 2, classes: int = 2,
                 ff: int = 64, bias: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff, dropout=0.0, batch_first=True,
                                       activation=nn.ReLU(), bias=bias) for _ in range(layers))
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for layer in self.encoder:
            h = layer(h)
        return self.head(h.mean(1))


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


def loader(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, batch_size: int = 32, shuffle: bool = True,
           ) -> DataLoader:
    """Batches of ``(x, y)`` (arrays or tensors), shuffled in the same order on every run."""
    tensors = [torch.as_tensor(a) for a in (x, y)]
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0) if shuffle else None)
