"""tripwire + Keras 3 in one file: a healthy run, then a run with dead ReLUs that stops itself.

    python examples/keras_quickstart.py                        # TensorFlow backend
    KERAS_BACKEND=jax python examples/keras_quickstart.py      # or the JAX backend
    KERAS_BACKEND=torch python examples/keras_quickstart.py    # or the torch backend

Runs on CPU in seconds with synthetic data. The rules are in ``tripwire.yaml`` beside this file
(``dead_relu`` there has the actions ``[alert, stop]``); the run records go to
``tripwire_runs/`` (``tripwire report tripwire_runs/<run>`` turns one into an HTML page).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from tripwire import KerasTripwire

CONFIG = Path(__file__).with_name("tripwire.yaml")


def model(dead_relus: bool) -> keras.Model:
    # the planted fault: a bias so negative that no unit of the first layer ever fires
    bias = keras.initializers.Constant(-25.0) if dead_relus else "zeros"
    net = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(64, activation="relu", bias_initializer=bias),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(4, activation="softmax"),
    ])
    net.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return net


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian classes in 16 standardized features."""
    centers = np.random.default_rng(0).normal(size=(4, 16))
    y = np.arange(n) % 4
    x = centers[y] + np.random.default_rng(seed).normal(size=(n, 16))
    return ((x - x.mean(0)) / x.std(0)).astype("float32"), y


def run(dead_relus: bool, epochs: int = 5, log_dir: str | None = None) -> KerasTripwire:
    tripwire = KerasTripwire(CONFIG, log_dir=log_dir)  # the only line a Keras script needs to add ...
    net = model(dead_relus)
    history = net.fit(*data(4096, seed=1), validation_data=data(512, seed=2), batch_size=64, epochs=epochs,
                      verbose=0, callbacks=[tripwire])  # ... and this callbacks=[...]
    print(f"{'dead ReLUs' if dead_relus else 'healthy'}: {len(history.history['loss'])} epoch(s), "
          f"{len(tripwire.findings)} finding(s), stopped by: {tripwire.stopped_by and tripwire.stopped_by.rule}")
    for finding in tripwire.findings:
        print("  ", finding)
    return tripwire


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    run(dead_relus=False)
    run(dead_relus=True)
