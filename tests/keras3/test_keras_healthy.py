"""Healthy `model.fit` runs stay silent with the default rule set (TensorFlow backend)."""

import keras
import pytest

from keras_kit import classification, cnn, fit, images, mlp

pytestmark = pytest.mark.keras
pytest.importorskip("keras")


def _assert_silent(tw, rec):
    assert tw.findings == [], "\n".join(str(f) for f in tw.findings)
    # the default set really ran: gradients, weights, activations, data and validation were all seen
    keys = {k for s in rec.samples for k in s.stats}
    assert {"grad_norm", "update_ratio", "label_count", "input_sum", "val_loss", "confusion",
            "init_weight_gain"} <= keys
    assert any(k.startswith("act_dead_frac") for k in keys)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_healthy_mlp_is_silent(jit):
    x, y = classification(n=3072)
    xv, yv = classification(n=512, seed=1)
    tw, rec, history = fit(mlp(hidden=(64, 32)), x, y, config=None, interval=5, epochs=4, validation_data=(xv, yv),
                           optimizer=keras.optimizers.Adam(3e-3), compile_kwargs={"jit_compile": jit})
    _assert_silent(tw, rec)
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]


def test_healthy_cnn_is_silent():
    x, y = images(n=1536)
    xv, yv = images(n=384, seed=1)
    tw, rec, history = fit(cnn(), x, y, config=None, interval=5, epochs=4, batch_size=32, validation_data=(xv, yv),
                           optimizer=keras.optimizers.Adam(3e-3))
    _assert_silent(tw, rec)
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]


def test_healthy_relu_mlp_at_batch_size_one_is_silent():
    # one sample per step: a live unit that is off for it would look dead, so per-unit shares wait
    # for 8 samples (KerasTripwire measures them per sampled step: at batch size 1, not at all)
    x, y = classification(n=640)
    tw, rec, _ = fit(mlp(), x, y, config=None, interval=5, epochs=1, batch_size=1)
    assert tw.findings == [], "\n".join(str(f) for f in tw.findings)
    keys = {k for s in rec.samples for k in s.stats}
    assert "grad_norm" in keys and not any(k.startswith("act_dead_frac") for k in keys)
