"""Recurrent layers train under KerasTripwire (TensorFlow backend; JAX and torch in their scripts).

An RNN layer's ``activation`` is a read-only property forwarding to its cell, and its gates run
inside a loop over the time steps: they are not activation sites. Their kernels, recurrent
kernels and biases get gradient and weight statistics like any other layer's.
"""

import pytest

from keras_kit import RECURRENT, fit, recurrent_data, recurrent_model, subjects
from tripwire.callbacks.keras.activations import find_sites

pytestmark = pytest.mark.keras
pytest.importorskip("keras")


def test_recurrent_layers_are_not_activation_sites():
    for kind in RECURRENT:
        assert [s.name for s in find_sites(recurrent_model(kind))] == ["hidden"], kind


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_recurrent_model_trains_with_statistics_and_no_finding(kind):
    model = recurrent_model(kind)
    # the default rules: activation, gradient, weight-update and data statistics
    tw, rec, history = fit(model, *recurrent_data(kind), config=None, interval=1, epochs=2, batch_size=32,
                           optimizer=False)
    assert tw.findings == [], "\n".join(str(f) for f in tw.findings)
    assert not tw.monitor.guard.disabled  # nothing had to be switched off
    assert len(history.history["loss"]) == 2
    recurrent = {v.path for v in model.get_layer("rnn").trainable_variables}
    assert any(p.endswith("recurrent_kernel") for p in recurrent)
    # kernels, recurrent kernels and biases get gradient and update statistics like any layer's
    assert recurrent <= subjects(rec, "grad_norm") and recurrent <= subjects(rec, "update_ratio")
    assert subjects(rec, "act_dead_frac") == {"hidden"}  # the Dense layer after the RNN is still watched
