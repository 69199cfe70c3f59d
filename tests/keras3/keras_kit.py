"""Tiny Keras models, synthetic data and a `fit` helper shared by the Keras tests (the dense
model and the data from :mod:`tripwire.kit`).

Every run is a few hundred optimizer steps of a model with a few thousand parameters: seconds.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from tripwire import KerasTripwire
from tripwire.kit.data import bands as images
from tripwire.kit.data import linear_classes as classification
from tripwire.kit.keras import mlp
from tripwire.stats import Sample

__all__ = ["RECURRENT", "Recorder", "classification", "cnn", "fired", "fit", "fit_with_failure", "images", "mlp",
           "planted_failure", "recurrent_data", "recurrent_model", "stacked_recurrent_model", "subjects"]


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


def sequences(n: int = 64, steps: int = 5, features: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sequences whose class (of ``features``) is the channel with the largest sum over time."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype("float32")
    return x, x.sum(axis=1).argmax(axis=1)


#: a recurrent layer named "rnn" of each kind, and the shape of its input
RECURRENT = {
    "lstm": (lambda: keras.layers.LSTM(8, name="rnn"), (5, 3)),
    "gru": (lambda: keras.layers.GRU(8, name="rnn"), (5, 3)),
    "simple_rnn": (lambda: keras.layers.SimpleRNN(8, name="rnn"), (5, 3)),
    "conv_lstm1d": (lambda: keras.layers.ConvLSTM1D(4, 2, name="rnn"), (5, 3, 2)),
    "bidirectional_lstm": (lambda: keras.layers.Bidirectional(keras.layers.LSTM(4), name="rnn"), (5, 3)),
}


def recurrent_model(kind: str, seed: int = 0) -> keras.Model:
    """A ``RECURRENT`` layer, then a ReLU layer "hidden" and a softmax head for 3 classes; compiled, with
    the optimizer built (else the first trace builds it and the step is traced twice)."""
    layer, shape = RECURRENT[kind]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape), layer(), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="head")], name="net")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def recurrent_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """`sequences` shaped for ``kind`` (ConvLSTM1D: each step is 3 rows of 2 channels)."""
    x, y = sequences()
    return (np.repeat(x[..., None], 2, axis=-1) if kind == "conv_lstm1d" else x), y


def stacked_recurrent_model(seed: int = 0) -> keras.Model:
    """Every kind of `RECURRENT` layer in one model (one compilation): ConvLSTM1D, LSTM, GRU,
    Bidirectional(LSTM) and SimpleRNN over `recurrent_data("conv_lstm1d")`, then "hidden" and a head."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((5, 3, 2)), keras.layers.ConvLSTM1D(4, 2, return_sequences=True, name="conv_lstm1d"),
        keras.layers.Reshape((5, 8)), keras.layers.LSTM(8, return_sequences=True, name="lstm"),
        keras.layers.GRU(8, return_sequences=True, name="gru"),
        keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bidirectional_lstm"),
        keras.layers.SimpleRNN(8, name="simple_rnn"), keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="head")], name="net")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


def subjects(rec: Recorder, key: str) -> set:
    """Every subject of a series (options in the key ignored: ``act_dead_frac[...]``) over the run."""
    return {subject for s in rec.samples for k in s.stats if k.split("[")[0] == key for subject in s.stats[k]}


def _small_fit(callbacks: list) -> keras.Model:
    model = mlp(hidden=(8,))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(*classification(n=96), batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    return model


@functools.cache
def _small_fit_weights() -> list:
    """Weights after `_small_fit` without tripwire (computed once per process)."""
    return _small_fit([]).get_weights()


def planted_failure(*args, **kwargs):
    raise RuntimeError("planted failure")


def fit_with_failure(owner, attribute: str) -> dict:
    """A seeded fit of a small MLP with ``owner.attribute`` (a tripwire function) raising: whether its
    weights equal those of the same fit without tripwire, the parts switched off, and whether the
    model is its own again (optimizer class, train_step)."""
    from tripwire.callbacks.keras.optimizer import TripwireApply

    original = vars(owner)[attribute]
    setattr(owner, attribute, planted_failure)
    try:
        tw = KerasTripwire(None, interval=1, log_dir=False)
        model = _small_fit([tw])
    finally:
        setattr(owner, attribute, original)
    equal = all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(model.get_weights(), _small_fit_weights()))
    return {"equal": equal,
            "off": list(tw.monitor.guard.disabled),
            "clean": not isinstance(model.optimizer, TripwireApply) and "train_step" not in vars(model)}


class Recorder:
    """Keeps every sample a callback's monitor processes (a test's window into the statistics)."""

    def __init__(self, callback: KerasTripwire) -> None:
        self.samples: list[Sample] = []
        process = callback.monitor.process

        def keep(sample: Sample):
            self.samples.append(sample)
            return process(sample)

        callback.monitor.process = keep

    def series(self, key: str, subject: str | None = None) -> list[tuple[int, float]]:
        """``(step, value)`` of one series (one subject) over the run."""
        return [(s.step, s.stats[key][subject]) for s in self.samples if key in s.stats and subject in s.stats[key]]

    def with_key(self, key: str) -> list[Sample]:
        return [s for s in self.samples if key in s.stats]


def fit(model: keras.Model, x, y, *, config=None, interval: int = 2, epochs: int = 3, batch_size: int = 64,
        optimizer=None, loss: str = "sparse_categorical_crossentropy", validation_data=None,
        callback_kwargs: dict | None = None, compile_kwargs: dict | None = None, callbacks=(),
        **fit_kwargs):
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
