"""A fixed sample of each large tensor's elements, so the weight snapshot is not a model copy.

``update_ratio`` (``||Δw|| / ||w||`` between sampled steps) and ``weight_unchanged`` compare the
weights with the weights of the previous sampled step. Keeping those whole doubles the model in
accelerator memory (a 7B bf16 model: 14 GB more). :class:`ElementSample` keeps every element of
a tensor of at most ``cap`` elements (exact, as before) and a fixed stratified random sample of
``cap`` elements of a larger one: the tensor's flat index range is cut into ``cap`` equal strata
and one element is drawn in each, so the sample covers the whole tensor evenly and does not line
up with rows or channels. The same elements are compared at every sample, and every rank of a DDP
run draws the same ones (the draw is seeded by the tensor's size).

What it estimates: ``||Δw_S|| / ||w_S||`` for a sample ``S`` of ``k`` elements is the ratio of two
norms whose squares are sums over ``k`` strata; with weights and updates spread over the tensor
(what training does) their relative error is about ``1 / sqrt(k)`` (1.6% at the default 4096).
Measured by ``benchmarks/snapshot_accuracy.py`` over 50 Adam steps of the CPU benchmark models
(MLP, CNN, transformer; 94-99% of their parameters in sampled tensors): median error 0.3-1.6%,
largest 3.1%, against thresholds that are set in decades. ``weight_unchanged`` on a sample
says "none of the sampled elements moved": a tensor of which fewer than about ``1 / k`` of the
elements move between samples could read as unchanged; an embedding's rows move whenever their
token occurs, far more often than that.

Memory: per sampled tensor ``cap`` values of its dtype, plus one index of ``cap`` int64 per
distinct (size, device), whatever the tensor's size.

Example:
    >>> import torch
    >>> sample = ElementSample(cap=4)
    >>> small, big = torch.arange(3.0), torch.arange(100.0)
    >>> [tuple(v.shape) for v in sample.views([small, big])]
    [(3,), (4,)]
    >>> sample.views([small])[0] is small, sample.sampled([small, big])
    (True, [False, True])
    >>> bool((sample.views([big])[0] == sample.views([big])[0]).all())  # the same elements every time
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Elements kept per tensor: tensors up to this size are snapshotted whole (exact), larger ones
#: through a fixed sample of this many elements.
SNAPSHOT_ELEMENTS = 4096


class ElementSample:
    """Which elements of each tensor the weight snapshot keeps.

    Args:
        cap: the most elements kept per tensor; a tensor of at most ``cap`` elements is kept whole.
    """

    def __init__(self, cap: int = SNAPSHOT_ELEMENTS) -> None:
        if cap < 1:
            raise ValueError(f"cap must be at least 1, got {cap}")
        self.cap = cap
        self._index: dict[tuple[int, torch.device], torch.Tensor] = {}

    def sampled(self, tensors: Sequence[torch.Tensor]) -> list[bool]:
        """Whether each tensor is represented by a sample (True) or kept whole (False)."""
        return [t.numel() > self.cap for t in tensors]

    def views(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The part of each tensor that is kept: the tensor itself when small, else its sampled
        elements as a new 1-D tensor of ``cap`` values (a gather: no sync, no host read)."""
        return [t if t.numel() <= self.cap else torch.take(t, self.index(t.numel(), t.device)) for t in tensors]

    def index(self, numel: int, device: torch.device) -> torch.Tensor:
        """The sampled flat indices of a tensor of ``numel`` elements (one per stratum), cached."""
        key = (numel, device)
        if key not in self._index:
            # drawn on the CPU with a generator seeded by the size: the same on every rank and run
            generator = torch.Generator().manual_seed(numel)
            starts = torch.arange(self.cap, dtype=torch.float64) * (numel / self.cap)
            width = numel / self.cap
            offsets = torch.rand(self.cap, generator=generator, dtype=torch.float64) * width
            index = (starts + offsets).floor().clamp_max(numel - 1).long()
            self._index[key] = index.to(device)
        return self._index[key]
