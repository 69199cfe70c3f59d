"""Initialization statistics of Dense and convolution kernels, read once before training.

For a kernel with one column per output unit (``Dense``: ``(in, out)``; ``ConvND``:
``(*window, in, out)``), reshaped to ``W`` of shape ``(units, fan_in)``:

- ``init_weight_gain`` = ``std(W) * sqrt(fan_in)``, the factor a layer multiplies the scale of
  its inputs by (He: 1.41, LeCun: 1.0);
- ``init_identical_rows`` = share of units whose incoming weights are allclose (options ``rtol``,
  ``atol``) to the mean row (all of them for a constant initialization); 0 for a layer with one
  unit, where it means nothing.

Example:
    >>> import keras
    >>> from tripwire.stats import Need
    >>> model = keras.Sequential([keras.Input((16,)),
    ...                           keras.layers.Dense(8, kernel_initializer="ones", name="const")], name="net")
    >>> init_stats(model, [Need("init_weight_gain"), Need("init_identical_rows")])
    {'init_identical_rows': {'net/const/kernel': 1.0}, 'init_weight_gain': {'net/const/kernel': 0.0}}
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np

from tripwire.callbacks.keras.activations import walk
from tripwire.callbacks.keras.buffer import to_numpy
from tripwire.stats import Need

#: the statistics computed here
INIT_STATS = ("init_weight_gain", "init_identical_rows")

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


def identical_share(rows: np.ndarray, rtol: float, atol: float) -> float:
    """Share of units whose incoming weights are allclose to the mean row (0 with a single unit)."""
    if rows.shape[0] < 2:
        return 0.0
    mean = rows.mean(axis=0, keepdims=True)
    return float(np.mean(np.all(np.abs(rows - mean) <= atol + rtol * np.abs(mean), axis=1)))


def init_stats(model, needs: Iterable[Need]) -> dict[str, dict[str | None, float]]:
    """The ``init_weight_gain`` and ``init_identical_rows`` needs, per kernel path (one host read
    per kernel); other needs are ignored."""
    needs = sorted({n for n in needs if n.stat in INIT_STATS}, key=lambda n: n.key)
    if not needs:
        return {}
    out: dict[str, dict[str | None, float]] = {n.key: {} for n in needs}
    transposed = {id(getattr(layer, "kernel", None)) for layer in walk(model)
                  if type(layer).__name__.endswith("Transpose")}
    for kernel in kernels(model):
        rows = unit_rows(to_numpy(kernel), id(kernel) in transposed)
        for need in needs:
            out[need.key][kernel.path] = gain(rows) if need.stat == "init_weight_gain" else identical_share(
                rows, float(need.setting("rtol")), float(need.setting("atol")))
    return out
