"""`LabelTally`: class counts of CPU labels, kept in Python until the flush.

On the CPU reading a batch's labels waits for nothing, and one ``tolist`` plus a count done in C
(``collections.Counter``) costs far less on a training step than the dozen small tensor ops of
:func:`~tripwire.callbacks.torch.reductions.class_counts`, each of which pays torch's dispatch
with caches the step has just evicted. At the flush the tally becomes the same
``[capacity + 1]`` vector: counts of labels ``0..capacity-1``, then the largest label seen.

Example:
    >>> import torch
    >>> tally = LabelTally()
    >>> tally.add(torch.tensor([0, 1, 1, -100, 7]))
    >>> tally.vector(capacity=4).tolist()   # 7 is past the capacity: not counted, but the largest
    [1.0, 2.0, 0.0, 0.0, 7.0]
    >>> LabelTally().vector(capacity=2).tolist()   # no label yet
    [0.0, 0.0, -1.0]
"""

from __future__ import annotations

from collections import Counter

import torch


class LabelTally:
    """Counts of integer labels (CPU tensors) since the last flush."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def add(self, labels: torch.Tensor) -> None:
        """Count a batch's labels (any shape; negative ones, such as ``ignore_index``, are kept
        for the largest label only, as :func:`~tripwire.callbacks.torch.reductions.class_counts` does)."""
        self.counts.update(labels.reshape(-1).tolist())

    def vector(self, capacity: int) -> torch.Tensor:
        """``[capacity + 1]`` float32 on the CPU: the counts of labels ``0..capacity-1``, then the
        largest label seen (-1 when none was)."""
        out = [0.0] * (capacity + 1)
        for label, count in self.counts.items():
            if 0 <= label < capacity:
                out[label] = float(count)
        out[capacity] = float(max(self.counts)) if self.counts else -1.0
        return torch.tensor(out, dtype=torch.float32)
