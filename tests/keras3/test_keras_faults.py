"""Planted faults in real `model.fit` runs fire the rule made for them (TensorFlow backend)."""

import keras
import numpy as np
import pytest

from keras_kit import classification, fired, fit, mlp

pytestmark = pytest.mark.keras
pytest.importorskip("keras")


def test_deep_sigmoid_stack_has_vanishing_gradients():
    x, y = classification()
    model = mlp(hidden=(32,) * 12, activation="sigmoid")
    tw, rec, _ = fit(model, x, y, config={"rules": {"vanishing_gradient": {}}}, epochs=1)
    found = fired(tw)["vanishing_gradient"][0]
    assert "hidden0/kernel" in found.subject  # the layer furthest from the loss
    first = rec.series("grad_norm", "net/hidden0/kernel")[0][1]
    last = rec.series("grad_norm", "net/head/kernel")[0][1]
    assert 0 < first < 1e-5 * last


def test_huge_learning_rate_is_nonfinite_and_stops_training():
    x, y = classification()
    model = mlp()
    tw, rec, history = fit(model, x, y, optimizer=keras.optimizers.SGD(1e8), epochs=5)
    assert tw.stopped_by is not None and tw.stopped_by.rule == "nonfinite"
    assert len(history.history["loss"]) == 1  # stopped within the first epoch
    assert any(s.stats.get("grad_nonfinite", {}).get(None) or s.stats.get("loss_nonfinite", {}).get(None)
               for s in rec.samples)


def test_exploding_gradient_fires_before_the_loss_is_nan():
    x, y = classification()
    model = mlp(classes=1, head=None)
    tw, _rec, _ = fit(model, x, y * 1000.0, loss="mse", optimizer=keras.optimizers.SGD(2e-3),
                     config={"rules": {"exploding_gradient": {}}}, epochs=1)
    found = fired(tw)["exploding_gradient"][0]
    assert found.value > 1e4
    assert np.isfinite(found.value)


def test_negative_bias_kills_relu_units():
    x, y = classification()
    model = mlp(bias_initializer=keras.initializers.Constant(-10.0))
    tw, rec, _ = fit(model, x, y, config={"rules": {"dead_relu": {}}}, epochs=1)
    found = fired(tw)["dead_relu"][0]
    assert found.subject.startswith("hidden0")
    assert rec.series("act_dead_frac[inactive_below=0.01]", "hidden0")[0][1] == 1.0


@pytest.mark.parametrize(("activation", "dies"), [("hard_swish", True), ("relu6", True), ("leaky_relu", False),
                                                  ("elu", False)])
def test_units_die_where_the_activation_is_flat_zero(activation, dies):
    # hard-swish is 0 below -3 (MobileNetV3's main path); leaky_relu and elu keep a gradient there
    x, y = classification(n=512)
    model = mlp(activation=activation, bias_initializer=keras.initializers.Constant(-10.0))
    tw, _rec, _ = fit(model, x, y, config={"rules": {"dead_relu": {}}}, epochs=1)
    assert ("dead_relu" in fired(tw)) == dies


def test_negative_bias_kills_relu_units_at_a_small_batch():
    x, y = classification(n=512)
    model = mlp(bias_initializer=keras.initializers.Constant(-10.0))
    tw, _rec, _ = fit(model, x, y, config={"rules": {"dead_relu": {}}}, epochs=1, batch_size=8)
    assert fired(tw)["dead_relu"][0].subject.startswith("hidden0")


def test_large_init_saturates_tanh():
    x, y = classification()
    model = mlp(activation="tanh", kernel_initializer=keras.initializers.RandomNormal(stddev=20.0))
    tw, _, _ = fit(model, x, y, config={"rules": {"tanh_saturation": {}}}, epochs=1)
    assert "hidden0" in fired(tw)["tanh_saturation"][0].subject


def test_large_init_saturates_sigmoid():
    x, y = classification()
    model = mlp(activation="sigmoid", kernel_initializer=keras.initializers.RandomNormal(stddev=20.0))
    tw, _, _ = fit(model, x, y, config={"rules": {"sigmoid_saturation": {}}}, epochs=1)
    assert "hidden0" in fired(tw)["sigmoid_saturation"][0].subject


def test_constant_init_is_poor_initialization_before_the_first_step():
    x, y = classification()
    model = mlp(kernel_initializer="ones")
    tw, rec, _ = fit(model, x, y, config={"rules": {"poor_initialization": {}}}, epochs=1)
    found = fired(tw)["poor_initialization"][0]
    assert found.step == 0 and "hidden0/kernel" in found.subject
    assert rec.samples[0].stats["init_identical_rows"]["net/hidden0/kernel"] == 1.0


def test_tiny_learning_rate_gives_small_updates():
    x, y = classification()
    model = mlp()
    tw, rec, _ = fit(model, x, y, optimizer=keras.optimizers.Adam(1e-10),
                     config={"rules": {"small_updates": {}}}, epochs=1)
    assert "small_updates" in fired(tw)
    assert max(v for _, v in rec.series("update_ratio", "net/hidden0/kernel")) < 1e-6


def test_branch_cut_off_from_the_loss_is_an_unchanged_tensor():
    inputs = keras.Input((20,))
    side = keras.layers.Dense(4, name="unused")(inputs)
    main = keras.layers.Dense(3, name="main")(inputs)
    out = keras.layers.Activation("softmax")(main + 0.0 * keras.ops.sum(side, axis=-1, keepdims=True))
    model = keras.Model(inputs, out)
    x, y = classification()
    tw, _, _ = fit(model, x, y, config={"rules": {"unchanged_tensor": {}}}, epochs=1)
    found = fired(tw)["unchanged_tensor"][0]
    assert "unused/kernel" in found.subject and "main" not in found.subject


def test_memorizing_a_few_samples_overfits():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 20)).astype("float32"), rng.integers(0, 3, 64)  # labels unrelated to inputs
    val = (rng.normal(size=(256, 20)).astype("float32"), rng.integers(0, 3, 256))
    model = mlp(hidden=(128, 128))
    tw, _, _ = fit(model, x, y, optimizer=keras.optimizers.Adam(1e-2), validation_data=val,
                   config={"rules": {"overfit": {}}}, epochs=40, batch_size=16)
    assert "overfit" in fired(tw)


def test_imbalanced_labels_fire_class_imbalance():
    x, _ = classification(n=2048)
    y = (np.arange(2048) % 40 == 0).astype("int64")  # 2.5% of class 1
    tw, rec, _ = fit(mlp(classes=2), x, y, config={"rules": {"class_imbalance": {}}}, epochs=1)
    found = fired(tw)["class_imbalance"][0]
    assert found.value > 10
    counts = {c: sum(s.stats["label_count"][c] for s in rec.with_key("label_count")) for c in ("0", "1")}
    assert counts["1"] > 0 and counts["0"] / counts["1"] == pytest.approx(39, rel=0.5)


def test_unscaled_inputs_fire_not_normalized():
    x, y = classification()
    x[:, 3] = x[:, 3] * 1000.0 + 5000.0  # one raw feature, e.g. a price
    tw, _, _ = fit(mlp(), x, y, config={"rules": {"not_normalized": {}}}, epochs=1)
    found = fired(tw)["not_normalized"][0]
    assert found.evidence["features"][0]["feature"] == "3"


def test_swapped_validation_labels_fire_classifier_confusion():
    x, y = classification()
    xv, yv = classification(n=512, seed=1)
    yv = np.choose(yv, [0, 2, 1])  # classes 1 and 2 swapped in the validation set
    tw, _, _ = fit(mlp(), x, y, validation_data=(xv, yv), optimizer=keras.optimizers.Adam(1e-2),
                   config={"rules": {"classifier_confusion": {}}}, epochs=3)
    subjects = {s.strip() for f in fired(tw)["classifier_confusion"] for s in f.subject.split(",")}
    assert subjects == {"1", "2"}


def test_padded_token_sequences_fire_token_ratio():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, size=(1024, 32))
    tokens[:, 8:] = 0  # 75% padding
    y = tokens[:, 0] % 2
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,), dtype="int32"), keras.layers.Embedding(50, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2, activation="softmax")])
    tw, _rec, _ = fit(model, tokens, y, config={"rules": {"token_ratio": {}}}, epochs=1)
    found = fired(tw)["token_ratio"][0]
    assert found.value == pytest.approx(0.75, abs=0.01)


def test_standalone_activation_layers_are_watched_and_restored():
    keras.utils.set_random_seed(0)
    relu, tanh = keras.layers.ReLU(name="relu_layer"), keras.layers.Activation("tanh", name="tanh_layer")
    inputs = keras.Input((20,))
    dead = relu(keras.layers.Dense(16, bias_initializer=keras.initializers.Constant(-10.0))(inputs))
    saturated = tanh(keras.layers.Dense(16, kernel_initializer=keras.initializers.RandomNormal(stddev=20.0))(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([dead, saturated]))
    x, y = classification()
    tw, _, _ = fit(keras.Model(inputs, outputs), x, y, config={"rules": {"dead_relu": {}, "tanh_saturation": {}}},
                   epochs=1)
    assert fired(tw)["dead_relu"][0].subject == "relu_layer"
    assert fired(tw)["tanh_saturation"][0].subject == "tanh_layer"
    assert "call" not in vars(relu) and tanh.activation is keras.activations.tanh
