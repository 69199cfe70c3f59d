"""Squeeze-excitation gates in Keras: a ReLU on a globally pooled map is not judged for dead
units (see tripwire.stats.pooled_map); the main path's ReLUs are."""

import keras
import numpy as np
import pytest

from keras_kit import fired, fit

pytestmark = pytest.mark.keras
pytest.importorskip("tensorflow")

DEAD = {"rules": {"dead_relu": {}}}


def gated(dead: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    far_below = keras.initializers.Constant(-20.0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="main",
                            bias_initializer=far_below if dead == "main" else "zeros")(inp)
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    reduce = keras.layers.Conv2D(4, 1, activation="relu", name="gate",
                                 bias_initializer=far_below if dead == "gate" else "zeros")(squeeze)
    scale = keras.layers.Conv2D(16, 1, activation="sigmoid")(reduce)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h * scale))
    return keras.Model(inp, out)


@pytest.mark.parametrize("dead", ["gate", "main"])
def test_dead_units_count_on_the_main_path_only(dead):
    rng = np.random.default_rng(0)
    x, y = rng.random((512, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 512)
    tw, rec, _ = fit(gated(dead), x, y, config=DEAD, epochs=2, batch_size=32,
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    measured = {site for s in rec.with_key("act_dead_frac[inactive_below=0.01]")
                for site in s.stats["act_dead_frac[inactive_below=0.01]"]}
    assert measured == {"main"}
    assert [f.subject for f in fired(tw).get("dead_relu", [])][:1] == ([] if dead == "gate" else ["main"])
