"""Tiny Keras models, synthetic data and a `fit` helper shared by the Keras tests.

Every run is a few hundred optimizer steps of a model with a few thousand parameters: seconds.
"""

from __future__ import annotations

import keras
import numpy as np

from tripwire import KerasTripwire
from tripwire.stats import Sample


def classification(n: int = 2048, features: int = 20, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardized features and labels a linear model can learn (argmax of a fixed projection)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x @ np.random.default_rng(99).normal(size=(features, classes))).argmax(1)
    return x, y


def images(n: int = 1024, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16x16 grayscale images in [0, 1] whose class is the brightest of `classes` vertical bands."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 1), dtype=np.float32) * 0.5
    y = rng.integers(0, classes, n)
    width = 16 // classes
    for i, c in enumerate(y):
        x[i, :, c * width:(c + 1) * width, 0] += 0.5
    return x, y


def mlp(features: int = 20, classes: int = 3, hidden: tuple[int, ...] = (32, 32), activation: str = "relu",
        seed: int = 0, head: str | None = "softmax", **dense_kwargs) -> keras.Model:
    """Dense stack with a ``head`` activation (``dense_kwargs`` go to the hidden layers)."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((features,))]
    layers += [keras.layers.Dense(h, activation=activation, name=f"hidden{i}", **dense_kwargs)
               for i, h in enumerate(hidden)]
    layers.append(keras.layers.Dense(classes, activation=head, name="head"))
    return keras.Sequential(layers, name="net")


def cnn(classes: int = 3, seed: int = 0) -> keras.Model:
    """Two small convolutions and a softmax head for 16x16x1 images."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv0"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes, activation="softmax", name="head"),
    ], name="net")


class Recorder:
    """Keeps every sample a callback's monitor processes (a test's window into the statistics)."""

    def __init__(self, callback: KerasTripwire) -> None:
        self.samples: list[Sample] = []
        process = callback.monitor.process

        def keep(sample: Sample):  # noqa: ANN202
            self.samples.append(sample)
            return process(sample)

        callback.monitor.process = keep

    def series(self, key: str, subject: str | None = None) -> list[tuple[int, float]]:
        """``(step, value)`` of one series (one subject) over the run."""
        return [(s.step, s.stats[key][subject]) for s in self.samples if key in s.stats and subject in s.stats[key]]

    def with_key(self, key: str) -> list[Sample]:
        return [s for s in self.samples if key in s.stats]


def fit(model: keras.Model, x, y, *, config=None, interval: int = 2, epochs: int = 3, batch_size: int = 64,  # noqa: ANN001
        optimizer=None, loss: str = "sparse_categorical_crossentropy", validation_data=None,  # noqa: ANN001
        callback_kwargs: dict | None = None, compile_kwargs: dict | None = None, callbacks=(),  # noqa: ANN001
        **fit_kwargs):  # noqa: ANN001
    """Compile (unless ``optimizer`` is False), fit with a `KerasTripwire` (after ``callbacks``); return
    (callback, recorder, history)."""
    if optimizer is not False:
        model.compile(optimizer or keras.optimizers.Adam(1e-3), loss, **(compile_kwargs or {}))
    tw = KerasTripwire(config, interval=interval, **{"log_dir": False, **(callback_kwargs or {})})
    rec = Recorder(tw)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, validation_data=validation_data,
                        callbacks=[*callbacks, tw], **fit_kwargs)
    return tw, rec, history


def fired(tw: KerasTripwire) -> dict[str, list]:
    """``{rule: [findings]}`` of a run."""
    out: dict[str, list] = {}
    for f in tw.findings:
        out.setdefault(f.rule, []).append(f)
    return out
