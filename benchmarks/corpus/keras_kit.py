"""What the Keras entries share: a seeded, single-threaded ``model.fit`` with the runner's
callback. Imported only inside training functions (it imports Keras)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def seeded(seed: int = 0) -> None:
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialized in this process
            pass


def fit(model: Any, x: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray],
        make_callback: Callable[..., Any], *, epochs: int, batch_size: int = 32, optimizer: Any = None,
        loss: str = "sparse_categorical_crossentropy") -> Any:
    """Compile (default Adam 1e-3) and fit for ``epochs``; returns the callback."""
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), loss=loss)
    callback = make_callback()
    model.fit(x, y, validation_data=validation, epochs=epochs, batch_size=batch_size, verbose=0,
              callbacks=[callback])
    return callback
