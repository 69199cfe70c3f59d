"""Initialization statistics of Dense and convolution kernels, read once before training.

For a kernel with one column per output unit (``Dense``: ``(in, out)``; ``ConvND``:
``(*window, in, out)``), reshaped to ``W`` of shape ``(units, fan_in)``:

- ``init_weight_gain`` = ``std(W) * sqrt(fan_in)``, the factor a layer multiplies the scale of
  its inputs by (He: 1.41, LeCun: 1.0);
- ``init_identical_rows`` = share of units whose incoming weights equal the mean row (all of
  them for a constant initialization); 0 for a layer with one unit, where it means nothing.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((16,)),
    ...                           keras.layers.Dense(8, kernel_initializer="ones", name="const")], name="net")
    >>> init_stats(model)
    {'init_weight_gain': {'net/const/kernel': 0.0}, 'init_identical_rows': {'net/const/kernel': 1.0}}
"""

from __future__ import annotations

import keras
import numpy as np

from tripwire.callbacks.keras.activations import walk
from tripwire.callbacks.keras.buffer import to_numpy

_KERNEL_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")


def kernels(model) -> list:
    """The kernel variables of the Dense and convolution layers of ``model``."""
    out = []
    for layer in walk(model):
        kernel = getattr(layer, "kernel", None) if type(layer).__name__ in _KERNEL_LAYERS else None
        if isinstance(kernel, keras.Variable) and len(kernel.shape) >= 2:
            out.append(kernel)
    return out


def unit_rows(kernel: np.ndarray, transposed: bool = False) -> np.ndarray:
    """``(units, fan_in)`` view of a kernel whose last axis is the output units."""
    w = np.asarray(kernel, np.float64)
    if transposed:  # ConvNDTranspose kernels are (*window, out, in)
        w = np.swapaxes(w, -1, -2)
    return w.reshape(-1, w.shape[-1]).T


def gain(rows: np.ndarray) -> float:
    """``std(W) * sqrt(fan_in)``."""
    return float(np.std(rows) * np.sqrt(rows.shape[1]))


def identical_share(rows: np.ndarray) -> float:
    """Share of units whose incoming weights equal the mean row (0 with a single unit)."""
    if rows.shape[0] < 2:
        return 0.0
    mean = rows.mean(axis=0, keepdims=True)
    tol = 1e-6 * max(float(np.max(np.abs(rows))), 1e-12)
    return float(np.mean(np.all(np.abs(rows - mean) <= tol, axis=1)))


def init_stats(model) -> dict[str, dict[str | None, float]]:
    """``init_weight_gain`` and ``init_identical_rows`` per kernel path (one host read per kernel)."""
    gains: dict[str | None, float] = {}
    same: dict[str | None, float] = {}
    transposed = {id(getattr(layer, "kernel", None)) for layer in walk(model)
                  if type(layer).__name__.endswith("Transpose")}
    for kernel in kernels(model):
        rows = unit_rows(to_numpy(kernel), id(kernel) in transposed)
        gains[kernel.path] = gain(rows)
        same[kernel.path] = identical_share(rows)
    return {"init_weight_gain": gains, "init_identical_rows": same}
