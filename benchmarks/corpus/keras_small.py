"""Small Keras trainings (TensorFlow backend): an LSTM sequence classifier and an MLP on iris
with a 15-row validation set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import sequences
from corpus.registry import CORPUS


def _lstm(make_callback: Callable[..., Any], *, epochs: int, lr: float = 3e-3) -> Any:
    import keras

    from corpus import keras_kit as kit

    kit.seeded()
    x, y = sequences(2048, seed=0)
    xv, yv = sequences(512, seed=1)
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.LSTM(48, return_sequences=True),
                              keras.layers.LSTM(48), keras.layers.Dense(3, activation="softmax")])
    return kit.fit(model, x, y, (xv, yv), make_callback, epochs=epochs, optimizer=keras.optimizers.Adam(lr))


def _iris(make_callback: Callable[..., Any], *, epochs: int, dead_bias: bool = False) -> Any:
    import keras
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    from corpus import keras_kit as kit

    kit.seeded()
    x, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype("float32"), y[order]
    val = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(3)])  # 15 rows, 5 per class
    train = np.setdiff1d(np.arange(len(y)), val)
    scaler = StandardScaler().fit(x[train])
    x = scaler.transform(x).astype("float32")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")
    model = keras.Sequential([keras.Input((4,)), hidden, keras.layers.Dense(3, activation="softmax")])
    if dead_bias:  # a bias of -20 before the first ReLU (an init gone wrong)
        kernel, bias = hidden.get_weights()
        hidden.set_weights([kernel, np.full_like(bias, -20.0)])
    return kit.fit(model, x[train], y[train], (x[val], y[val]), make_callback, epochs=epochs, batch_size=16,
                   optimizer=keras.optimizers.Adam(1e-2))


LSTM = CORPUS.healthy(
    "keras/lstm", "keras",
    "2-layer Keras LSTM (48 units) classifying noisy oscillations by frequency; Adam 3e-3; 5 epochs of 64 steps",
    lambda mc: _lstm(mc, epochs=5))
CORPUS.twin(LSTM, "lr_1e-9", "learning rate 1e-9", ["small_updates"], lambda mc: _lstm(mc, epochs=5, lr=1e-9))

IRIS = CORPUS.healthy(
    "keras/iris_mlp", "keras",
    "MLP 4-8-3 (ReLU) on iris (scikit-learn's copy), standardized, 135 training rows and a 15-row validation set "
    "(5 per class); Adam 1e-2, batch 16; 60 epochs of 9 steps",
    lambda mc: _iris(mc, epochs=60))
CORPUS.twin(IRIS, "dead_bias", "the first hidden layer's bias set to -20", ["dead_relu"],
            lambda mc: _iris(mc, epochs=60, dead_bias=True))
