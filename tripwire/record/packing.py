"""How one sample's values are stored: its series keys as a *layout* (the ids of its ``(name,
subject)`` pairs, shared by every sample with the same series) and its values packed in one blob.

Values are little-endian float64: lossless, NaN and ±Inf included (a sample holds no missing
values: a ``None`` is not stored). Key ids are little-endian uint32. A value costs 8 bytes plus
its share of one row per sample.

Example:
    >>> blob = pack_values([0.5, float("nan"), float("-inf")])
    >>> len(blob), unpack_values(blob).tolist()[::2]
    (24, [0.5, -inf])
    >>> unpack_ids(pack_ids([3, 1, 70000])).tolist()
    [3, 1, 70000]
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

import numpy as np

_LITTLE = sys.byteorder == "little"
VALUES = np.dtype("<f8")
IDS = np.dtype("<u4")


def pack_values(values: Sequence[float]) -> bytes:
    """The values as one blob of little-endian float64."""
    packed = array("d", values)
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def pack_ids(ids: Sequence[int]) -> bytes:
    """Series key ids as one blob of little-endian uint32."""
    packed = array("I", ids) if array("I").itemsize == 4 else array("L", ids)
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def unpack_values(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=VALUES).astype(np.float64)


def unpack_ids(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=IDS).astype(np.int64)
