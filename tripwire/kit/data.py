"""Seeded synthetic data sets in numpy: small, learnable, the same for every framework.

Example:
    >>> x, y = linear_classes(4, features=6, classes=3)
    >>> x.shape, x.dtype, y.tolist()
    ((4, 6), dtype('float32'), [0, 2, 1, 2])
    >>> x, y = bands(2, size=6, classes=3)
    >>> x.shape, y.tolist(), bool((x[1, :, 2 * y[1]:2 * y[1] + 2] >= 0.5).all())
    ((2, 6, 6, 1), [1, 1], True)
    >>> x, y = tabular(6, features=4, classes=3)
    >>> x.shape, y.tolist()
    ((6, 4), [2, 2, 0, 0, 1, 1])
"""

from __future__ import annotations

import numpy as np


def linear_classes(n: int = 2048, features: int | tuple[int, ...] = 20, classes: int = 3, seed: int = 0,
                   map_seed: int | None = 99) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 inputs (``features``: a count, or the shape of one input); the
    label is the argmax of a fixed random linear map of the flattened input (drawn from
    ``map_seed``, or, if None, from ``seed`` after the inputs). A linear model can learn it; the
    classes are roughly balanced."""
    rng = np.random.default_rng(seed)
    shape = (features,) if isinstance(features, int) else tuple(features)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    draw = rng if map_seed is None else np.random.default_rng(map_seed)
    projection = draw.normal(size=(int(np.prod(shape)), classes))
    return x, (x.reshape(n, -1) @ projection).argmax(1)


def bands(n: int = 1024, size: int = 16, classes: int = 3, channels: int = 1, seed: int = 0,
          channels_last: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Square float32 images in [0, 1] of noise in [0, 0.5), plus 0.5 on one of ``classes``
    vertical bands: the class. ``(N, size, size, channels)`` or ``(N, channels, size, size)``."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, channels), dtype=np.float32) * 0.5
    y = rng.integers(0, classes, n)
    width = size // classes
    columns = np.arange(size)
    lit = (columns >= y[:, None] * width) & (columns < (y[:, None] + 1) * width)
    x += np.float32(0.5) * lit[:, None, :, None].astype(np.float32)
    return (x if channels_last else x.transpose(0, 3, 1, 2).copy()), y


def tabular(n: int = 2000, features: int = 10, informative: int | None = None, noise: float = 0.3, seed: int = 0,
            classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of ``features`` standard-normal float32 columns; the label is one of ``classes``
    equal-sized bins of a noisy linear score of the first ``informative`` columns (default: all;
    the others are pure noise). A table for gradient-boosted trees."""
    informative = features if informative is None else informative
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    weights = np.linspace(1.0, 0.5, informative)
    score = x[:, :informative] @ weights / np.sqrt(informative) + noise * rng.normal(size=n)
    edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    return x, np.searchsorted(edges, score).astype(np.int64)
