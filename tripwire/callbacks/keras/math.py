"""Scalar reductions in ``keras.ops``, traced into the compiled train step on every backend.

Every function takes backend tensors and returns float32 scalars (or small vectors for the
per-class and per-feature statistics); nothing is read on the host. Inputs are cast to float32
first, so fp16/bf16 tensors under mixed precision neither overflow nor lose small values.

Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> g = ops.convert_to_tensor(np.array([[0.0, 3.0], [4.0, 0.0]], "float32"))
    >>> [round(float(ops.convert_to_numpy(f(g))), 3) for f in (norm, abs_mean, zero_frac, nonfinite)]
    [5.0, 1.75, 0.5, 0.0]
    >>> float(ops.convert_to_numpy(unit_share_at_least(ops.greater(g, 0), 1, 0.5)))
    1.0
"""

from __future__ import annotations

import keras
from keras import ops

F32 = "float32"
_BACKEND = keras.backend.backend()


def f32(x):  # backend tensors
    """``x`` as float32."""
    return x if str(getattr(x, "dtype", "")) == F32 else ops.cast(x, F32)


def norm(x, fused: bool = True):
    """L2 norm over every element; ``fused``: one pass on TensorFlow and torch (no squared copy).
    XLA has no kernel for TensorFlow's fused op (and fuses the plain version itself)."""
    x = f32(x)
    if fused and _BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.math.reduce_euclidean_norm(x)
    if _BACKEND == "torch":
        import torch

        return torch.linalg.vector_norm(x)
    return ops.sqrt(ops.sum(ops.square(x)))


def sumsq(x, fused: bool = True):
    """Sum of squares (the square of the L2 norm)."""
    return ops.square(norm(x, fused))


def abs_mean(x):
    """Mean absolute value."""
    return ops.mean(ops.abs(f32(x)))


def zero_frac(x):
    """Share of exactly-zero elements."""
    return ops.mean(ops.cast(ops.equal(x, 0), F32))


def variance(x):
    """Variance of the elements."""
    return ops.var(f32(x))


def nonfinite(x):
    """1.0 when any element is NaN/Inf, else 0.0."""
    return 1.0 - ops.cast(ops.all(ops.isfinite(x)), F32)


def allclose(a, b, rtol: float, atol: float):
    """1.0 when ``|a - b| <= atol + rtol * |b|`` everywhere (numpy's allclose), else 0.0."""
    a, b = f32(a), f32(b)
    return ops.cast(ops.all(ops.less_equal(ops.abs(a - b), atol + rtol * ops.abs(b))), F32)


def units_last(x, unit_axis: int = -1):
    """``x`` reshaped to ``(positions, units)``: every position along the other axes is a sample."""
    rank = len(x.shape)
    if rank < 2:
        return ops.reshape(x, (-1, 1))
    axis = unit_axis % rank
    if axis != rank - 1:
        x = ops.moveaxis(x, axis, -1)
    return ops.reshape(x, (-1, x.shape[-1]))


def positions(x, unit_axis: int = -1):
    """Samples per unit of ``x`` (every position along the other axes), as a float32 scalar."""
    return ops.cast(ops.shape(units_last(x, unit_axis))[0], F32)


def unit_share_at_least(mask, unit_axis: int, share: float):
    """Share of units where ``mask`` holds for at least ``share`` of the positions."""
    per_unit = ops.mean(ops.cast(units_last(mask, unit_axis), F32), axis=0)
    return ops.mean(ops.cast(ops.greater_equal(per_unit, share), F32))


def unit_share_below(mask, unit_axis: int, share: float):
    """Share of units where ``mask`` holds for fewer than ``share`` of the positions."""
    per_unit = ops.mean(ops.cast(units_last(mask, unit_axis), F32), axis=0)
    return ops.mean(ops.cast(ops.less(per_unit, share), F32))


def feature_stats(x, feature_axis: int = -1):
    """Per-feature ``(count, sum, sum of squares, min, max)`` of a float input, each of shape (F,)."""
    rows = units_last(f32(x), feature_axis)
    count = ops.full((rows.shape[-1],), ops.cast(ops.shape(rows)[0], F32))
    return count, ops.sum(rows, axis=0), ops.sum(ops.square(rows), axis=0), ops.min(rows, axis=0), ops.max(rows, axis=0)


def class_ids(y, kind: str, threshold: float = 0.5):
    """Integer class ids, shape (N,), of labels or predictions.

    ``kind`` is ``sparse`` (integer ids, shape (N,) or (N, 1)), ``onehot`` (argmax over the last
    axis) or ``binary`` (one probability or logit per sample, split at ``threshold``).
    """
    if kind == "onehot":
        return ops.reshape(ops.argmax(y, axis=-1), (-1,))
    if kind == "binary":
        return ops.reshape(ops.cast(ops.greater_equal(f32(y), threshold), "int32"), (-1,))
    return ops.reshape(ops.cast(y, "int32"), (-1,))


def counts(ids, n: int):
    """Occurrences of each id in ``[0, n)``, shape (n,), float32 (ids outside are dropped)."""
    return ops.sum(ops.one_hot(ids, n, dtype=F32), axis=0)
