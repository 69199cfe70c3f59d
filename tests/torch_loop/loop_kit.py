"""Tiny models, synthetic data (both from :mod:`tripwire.kit.torch`) and a plain training loop
shared by the plain-loop tests.

Everything is CPU-sized: a run is at most a few hundred optimizer steps of a model with a few
thousand parameters, a second or two of wall time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import torch
from torch import nn

from tripwire.kit import torch as kit
from tripwire.kit.torch import mlp
from tripwire.torch import Tripwire

__all__ = ["batches", "blobs", "mlp", "quiet", "train"]


#: the kit's Gaussian blobs, spread 2.0 unless told otherwise
blobs = functools.partial(kit.blobs, spread=2.0)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int = 32, seed: int = 0,
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches, epoch after epoch, without end."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]


def quiet(model: nn.Module, optimizer: object, config: object = None, **kwargs: object) -> Tripwire:
    """A Tripwire that writes no run record unless asked."""
    kwargs.setdefault("log_dir", False)
    return Tripwire(model, optimizer, config, **kwargs)


def train(tw: Tripwire, model: nn.Module, optimizer: torch.optim.Optimizer, data: Iterator, steps: int, *,
          accumulate: int = 1, fault: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
          losses: list[float] | None = None) -> int:
    """Train until ``steps`` optimizer steps or a stop; ``fault(step, x)`` may change each batch's
    inputs; each batch's loss is appended to ``losses`` when it is given. Returns the optimizer
    steps taken (the index of the step that stopped, when one did)."""
    taken = 0
    for micro, (x, y) in enumerate(data):
        if fault is not None:
            x = fault(taken, x)
        loss = nn.functional.cross_entropy(model(x), y)
        if losses is not None:
            losses.append(loss.item())
        (loss / accumulate).backward()
        last = (micro + 1) % accumulate == 0
        if last:
            optimizer.step()
            optimizer.zero_grad()
        if tw.step(loss, inputs=x, labels=y):
            return taken
        taken += last
        if taken >= steps:
            return taken
    raise AssertionError("unreachable: the data never ends")
