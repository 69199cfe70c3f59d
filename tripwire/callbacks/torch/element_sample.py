"""The torch side of :mod:`tripwire.element_sample`: the snapshot's view of each tensor.

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

from tripwire.element_sample import SNAPSHOT_ELEMENTS, sampled, stratified_index

__all__ = ["SNAPSHOT_ELEMENTS", "ElementSample"]


class ElementSample:
    """Which elements of each tensor the weight snapshot keeps (memory per sampled tensor: ``cap``
    values of its dtype, plus one index of ``cap`` int64 per distinct size and device).

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
        return [sampled(t.numel(), self.cap) for t in tensors]

    def views(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The part of each tensor that is kept: the tensor itself when small, else its sampled
        elements as a new 1-D tensor of ``cap`` values (a gather: no sync, no host read)."""
        return [torch.take(t, self.index(t.numel(), t.device)) if sampled(t.numel(), self.cap) else t
                for t in tensors]

    def indices(self) -> list[torch.Tensor]:
        """The index tensors kept so far (one per distinct size and device)."""
        return list(self._index.values())

    def index(self, numel: int, device: torch.device) -> torch.Tensor:
        """The sampled flat indices of a tensor of ``numel`` elements, cached per size and device."""
        key = (numel, device)
        if key not in self._index:
            self._index[key] = torch.from_numpy(stratified_index(numel, self.cap)).to(device)
        return self._index[key]
