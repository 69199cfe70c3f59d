"""Recurrent layers train under KerasTripwire (TensorFlow backend; JAX and torch in their scripts).

An RNN layer's ``activation`` is a read-only property forwarding to its cell, and its gates run
inside a loop over the time steps: they are not activation sites. Their kernels, recurrent
kernels and biases get gradient and weight statistics like any other layer's.
"""

import keras
import numpy as np
import pytest

from keras_kit import fit
from tripwire.callbacks.keras_activations import find_sites

pytestmark = pytest.mark.keras
pytest.importorskip("keras")

def sequences(n: int = 128, steps: int = 5, features: int = 3, seed: int = 0):
    """Sequences whose class (of 3) is the channel with the largest sum over time."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype("float32")
    return x, x.sum(axis=1).argmax(axis=1)


RECURRENT = {
    "lstm": (lambda: keras.layers.LSTM(8, name="rnn"), (5, 3)),
    "gru": (lambda: keras.layers.GRU(8, name="rnn"), (5, 3)),
    "simple_rnn": (lambda: keras.layers.SimpleRNN(8, name="rnn"), (5, 3)),
    "conv_lstm1d": (lambda: keras.layers.ConvLSTM1D(4, 2, name="rnn"), (5, 3, 2)),
    "bidirectional_lstm": (lambda: keras.layers.Bidirectional(keras.layers.LSTM(4), name="rnn"), (5, 3)),
}


def recurrent_model(kind: str) -> keras.Model:
    layer, shape = RECURRENT[kind]
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(shape), layer(), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="relu", name="hidden"),
                             keras.layers.Dense(3, activation="softmax", name="head")], name="net")


def data_for(kind: str):
    x, y = sequences()
    if kind == "conv_lstm1d":  # (time, rows, channels): the same sequences, split into 3 rows of 2 channels
        x = np.repeat(x[..., None], 2, axis=-1)
    return x, y


def test_recurrent_layers_are_not_activation_sites():
    for kind in RECURRENT:
        assert [s.name for s in find_sites(recurrent_model(kind))] == ["hidden"], kind


def subjects(rec, prefix: str) -> set:
    return {subject for s in rec.samples for k in s.stats if k.split("[")[0] == prefix for subject in s.stats[k]}


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_recurrent_model_trains_with_statistics_and_no_finding(kind):
    x, y = data_for(kind)
    model = recurrent_model(kind)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)  # else the first trace builds it, and the step is traced twice
    # the default rules: activation, gradient, weight-update and data statistics
    tw, rec, history = fit(model, x, y, config=None, interval=1, epochs=2, batch_size=32, optimizer=False)
    assert tw.findings == [], "\n".join(str(f) for f in tw.findings)
    assert not tw.monitor.guard.disabled  # nothing had to be switched off
    assert len(history.history["loss"]) == 2
    recurrent = {v.path for v in model.get_layer("rnn").trainable_variables}
    assert any(p.endswith("recurrent_kernel") for p in recurrent)
    # kernels, recurrent kernels and biases get gradient and update statistics like any layer's
    assert recurrent <= subjects(rec, "grad_norm") and recurrent <= subjects(rec, "update_ratio")
    assert subjects(rec, "act_dead_frac") == {"hidden"}  # the Dense layer after the RNN is still watched
