"""Label faults shared by the entries of every framework (numpy only).

Example:
    >>> import numpy as np
    >>> swap_labels(np.array([0, 1, 2, 1])).tolist()
    [1, 0, 2, 0]
    >>> y = np.arange(1000) % 4
    >>> counts = np.bincount(collapse_labels(y), minlength=4)
    >>> int(counts[0]) > 900, int(counts[1:].max()) < 30
    (True, True)
"""

from __future__ import annotations

import numpy as np


def swap_labels(y: np.ndarray, a: int = 0, b: int = 1) -> np.ndarray:
    """Labels with classes ``a`` and ``b`` exchanged (a validation-set fault)."""
    out = y.copy()
    out[y == a], out[y == b] = b, a
    return out


def collapse_labels(y: np.ndarray, keep: float = 0.04, seed: int = 0) -> np.ndarray:
    """Labels where all but ``keep`` of the samples of every class but 0 became class 0 (a
    labelling pipeline that falls back to a default class)."""
    rng = np.random.default_rng(seed)
    out = y.copy()
    out[(y != 0) & (rng.random(len(y)) > keep)] = 0
    return out
