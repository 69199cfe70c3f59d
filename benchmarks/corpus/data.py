"""Synthetic data for the corpus (numpy only; nothing is downloaded).

Each generator is seeded, learnable and not trivial: a model has to train for a while to fit it.

Example:
    >>> x, y = images(8, size=16, classes=4)
    >>> x.shape, x.dtype, float(x.min()) >= 0.0, float(x.max()) <= 1.0, sorted(set(y.tolist()))
    ((8, 3, 16, 16), dtype('float32'), True, True, [0, 1, 2, 3])
    >>> ids, y = token_classes(4, length=10, vocab=50, pad_share=0.2)
    >>> ids.shape, int((ids[:, -2:] == 0).all()), y.tolist()
    ((4, 10), 1, [0, 1, 0, 1])
"""

from __future__ import annotations

import numpy as np


def images(n: int, size: int = 16, classes: int = 4, seed: int = 0, channels_last: bool = False,
           noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """RGB images in [0, 1]: each class a grating of its own orientation and frequency with a
    random phase, a random tint and pixel noise. ``(N, 3, H, W)`` or ``(N, H, W, 3)``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    angle = np.pi * y / classes
    freq = 2 * np.pi * (1.5 + (y % 3)) / size
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = np.sin(freq[:, None, None] * (np.cos(angle)[:, None, None] * rows + np.sin(angle)[:, None, None] * cols)
                  + phase[:, None, None])
    tint = rng.uniform(0.3, 1.0, (n, 3))
    x = 0.5 + 0.5 * wave[:, None] * tint[:, :, None, None]
    x = np.clip(x + noise * rng.normal(size=x.shape), 0.0, 1.0).astype(np.float32)
    if channels_last:
        x = x.transpose(0, 2, 3, 1).copy()
    return x, y.astype(np.int64)


def token_classes(n: int, length: int = 32, vocab: int = 200, pad_share: float = 0.2, seed: int = 0,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences (pad id 0 at the end, ``pad_share`` of each) whose class (0/1) says
    which of two marker tokens (1 or 2) is sprinkled into the text, among random tokens."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    ids = rng.integers(3, vocab, (n, length))
    marker = np.broadcast_to((y + 1)[:, None], (n, length))
    ids = np.where(rng.random((n, length)) < 0.15, marker, ids)
    pad = round(pad_share * length)
    if pad:
        ids[:, length - pad:] = 0
    return ids.astype(np.int64), y.astype(np.int64)


def markov_text(n: int, length: int = 32, vocab: int = 64, seed: int = 0) -> np.ndarray:
    """``(n, length)`` token ids from a sparse bigram model (each token has 4 likely successors)
    with Zipf-like token frequencies, as in text; a causal LM can learn it well below chance."""
    rng = np.random.default_rng(1234)  # one language for every seed
    successors = rng.integers(0, vocab, (vocab, 4))
    weights = np.array([0.55, 0.25, 0.12, 0.08])
    draw = np.random.default_rng(seed)
    ids = np.empty((n, length), dtype=np.int64)
    ids[:, 0] = np.minimum(draw.zipf(1.3, n) - 1, vocab - 1)
    for t in range(1, length):
        pick = draw.choice(4, size=n, p=weights)
        ids[:, t] = successors[ids[:, t - 1], pick]
    return ids


def blobs(n: int, features: int = 16, classes: int = 4, seed: int = 0, spread: float = 1.6,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Standardized Gaussian blobs with overlapping classes (the class centers are the same for
    every seed)."""
    centers = np.random.default_rng(1234).normal(size=(classes, features))
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = centers[y] + spread * rng.normal(size=(n, features))
    x = (x - x.mean(0)) / x.std(0)
    return x.astype(np.float32), y.astype(np.int64)


def sequences(n: int, length: int = 24, features: int = 8, classes: int = 3, seed: int = 0,
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(n, length, features)`` noisy sequences whose class is the frequency of a hidden
    oscillation that is spread over the features (a recurrent model must integrate over time)."""
    mix = np.random.default_rng(1234).normal(size=(2, features)) / np.sqrt(2)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, n)
    freq = 2 * np.pi * (1 + y) / length
    wave = np.stack([np.sin(freq[:, None] * t + phase[:, None]), np.cos(freq[:, None] * t + phase[:, None])], -1)
    x = wave @ mix + 0.8 * rng.normal(size=(n, length, features))
    return x.astype(np.float32), y.astype(np.int64)
