"""Which elements of a large weight tensor the snapshot keeps: one source for every collector.

``update_ratio`` (``||Δw|| / ||w||`` between sampled steps) and ``weight_unchanged`` compare the
weights with those of the previous sampled step. Keeping them whole doubles the model in
accelerator memory (a 7B bf16 model: 14 GB more). Instead a tensor of at most
:data:`SNAPSHOT_ELEMENTS` elements is kept whole (exact, as before) and a larger one through a
fixed stratified random sample of that many elements: its flat index range is cut into equal
strata and one element is drawn in each, so the sample covers the whole tensor evenly and does not
line up with rows or channels. The same elements are compared at every sample, and every rank of
a data-parallel run draws the same ones (the draw is seeded by the tensor's size).

What it estimates: ``||Δw_S|| / ||w_S||`` for a sample ``S`` of ``k`` elements is the ratio of two
norms whose squares are sums over ``k`` strata; with weights and updates spread over the tensor
(what training does) their relative error is about ``1 / sqrt(k)`` (1.6% at 4096). Measured by
``benchmarks/snapshot_accuracy.py`` over 50 Adam steps of the CPU benchmark models (MLP, CNN,
transformer; 94-99% of their parameters in sampled tensors): median error 0.2-0.6%, largest
3.2%, against thresholds that are set in decades. ``weight_unchanged`` on a sample says "none of
the sampled elements moved": a tensor of which fewer than about ``1 / k`` of the elements move
between samples could read as unchanged; an embedding's rows move whenever their token occurs,
far more often than that.

Example:
    >>> index = stratified_index(10_000, cap=100)
    >>> len(index), (index // 100).tolist() == list(range(100))    # one element per stratum of 100
    (100, True)
    >>> bool((stratified_index(10_000, cap=100) == index).all())    # the same draw every time
    True
    >>> sampled(4096), sampled(4097)
    (False, True)
"""

from __future__ import annotations

import numpy as np

#: Elements kept per tensor: tensors up to this size are snapshotted whole (exact), larger ones
#: through a fixed sample of this many elements.
SNAPSHOT_ELEMENTS = 4096


def sampled(numel: int, cap: int = SNAPSHOT_ELEMENTS) -> bool:
    """Whether a tensor of ``numel`` elements is represented by a sample (else kept whole)."""
    return numel > cap


def stratified_index(numel: int, cap: int = SNAPSHOT_ELEMENTS) -> np.ndarray:
    """``cap`` flat indices into a tensor of ``numel`` elements, one drawn in each of ``cap`` equal
    strata, sorted (int64; seeded by ``numel``: the same on every rank and in every run)."""
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    width = numel / cap
    offsets = np.random.default_rng(numel).random(cap) * width
    return np.minimum(np.floor(np.arange(cap) * width + offsets), numel - 1).astype(np.int64)
