"""Data statistics and the confusion matrix from every way `fit` gets data, or from the callback."""

import keras
import numpy as np
import pytest

from keras_kit import classification, fired, fit, mlp
from tripwire.callbacks.keras.data import LabelSpec, host_stats, label_spec

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

IMBALANCE = {"rules": {"class_imbalance": {}}}


def imbalanced(n=2048):
    x, _ = classification(n=n)
    return x, (np.arange(n) % 40 == 0).astype("int64")


def test_tf_data_batches_are_seen_in_graph():
    x, y = imbalanced()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    tw, _, _ = fit(mlp(classes=2), ds, None, config=IMBALANCE, epochs=1, batch_size=None, shuffle=False)
    assert "class_imbalance" in fired(tw)


def test_py_dataset_batches_are_seen_in_graph():
    x, y = imbalanced()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(x) // 64

        def __getitem__(self, i):
            return x[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]

    tw, _, _ = fit(mlp(classes=2), Batches(), None, config=IMBALANCE, epochs=1, batch_size=None)
    assert "class_imbalance" in fired(tw)


def test_one_hot_labels_are_counted_by_class():
    x, y = imbalanced()
    tw, rec, _ = fit(mlp(classes=2), x, keras.utils.to_categorical(y, 2), loss="categorical_crossentropy",
                     config=IMBALANCE, epochs=1)
    assert "class_imbalance" in fired(tw)
    assert set(rec.with_key("label_count")[0].stats["label_count"]) == {"0", "1"}


def test_binary_sigmoid_classifier_is_counted_as_two_classes():
    x, y = imbalanced()
    model = mlp(classes=1, head="sigmoid")
    tw, _, _ = fit(model, x, y.astype("float32"), loss="binary_crossentropy", config=IMBALANCE, epochs=1)
    assert label_spec(model) == LabelSpec("binary", 2, 0.5)
    assert "class_imbalance" in fired(tw)


def test_regression_has_no_label_statistics():
    x, y = classification()
    model = mlp(classes=1, head=None)
    tw, rec, _ = fit(model, x, y.astype("float32"), loss="mse", config=IMBALANCE, epochs=1)
    assert label_spec(model) is None and not rec.with_key("label_count") and tw.findings == []


def test_explicit_train_data_is_used_once_before_training():
    x, y = imbalanced()
    tw, rec, _ = fit(mlp(classes=2), x, y, config=IMBALANCE, epochs=1, callback_kwargs={"train_data": (x, y)})
    assert fired(tw)["class_imbalance"][0].step == 0
    assert len(rec.with_key("label_count")) == 1  # not also from the training batches
    assert rec.samples[0].stats["label_count"] == {"0": float((y == 0).sum()), "1": float((y == 1).sum())}


def test_explicit_validation_data_fills_the_confusion_matrix():
    x, y = classification()
    xv, yv = classification(n=512, seed=1)
    yv = np.choose(yv, [0, 2, 1])
    tw, rec, _ = fit(mlp(), x, y, optimizer=keras.optimizers.Adam(1e-2), epochs=3,
                     config={"rules": {"classifier_confusion": {}}}, callback_kwargs={"validation_data": (xv, yv)})
    assert "classifier_confusion" in fired(tw)
    assert sum(rec.with_key("confusion")[0].stats["confusion"].values()) == len(yv)


def test_host_stats_match_numpy_for_batches():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(300, 4))
    y = rng.integers(0, 3, 300)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    from tripwire.stats import Need

    stats = host_stats(ds, LabelSpec("sparse", 3), [Need(s) for s in ("label_count", "input_sum", "input_max")])
    assert [stats["label_count"][str(c)] for c in range(3)] == np.bincount(y).tolist()
    assert [stats["input_sum"][str(f)] for f in range(4)] == pytest.approx(x.sum(0))
    assert [stats["input_max"][str(f)] for f in range(4)] == pytest.approx(x.max(0))


def test_next_token_labels_of_a_language_model_are_not_counted_as_classes():
    # A causal LM's labels are the next token at every position, Zipf-distributed like any text:
    # token frequencies are no class balance to fix (see tripwire.stats.one_label_per_example).
    rng = np.random.default_rng(0)
    vocab, length = 64, 12
    weights = 1.0 / np.arange(1, vocab + 1)
    text = rng.choice(vocab, size=(1024, length + 1), p=weights / weights.sum())
    x, y = text[:, :-1], text[:, 1:]
    model = keras.Sequential([keras.Input((length,), dtype="int32"), keras.layers.Embedding(vocab, 16),
                              keras.layers.Dense(vocab)])
    tw, rec, _ = fit(model, x, y, config=IMBALANCE, epochs=1,
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert label_spec(model) is not None and label_spec(model).classes == vocab  # a classifier head
    assert not rec.with_key("label_count") and "class_imbalance" not in fired(tw)
    per_example = text[:, 0]  # one label per row, as skewed: counted, and it fires
    head = keras.Sequential([keras.Input((length,), dtype="int32"), keras.layers.Embedding(vocab, 16),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(vocab)])
    tw, _, _ = fit(head, x, per_example, config=IMBALANCE, epochs=1,
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert "class_imbalance" in fired(tw)


NORMALIZED = {"rules": {"not_normalized": {"min_samples": 100}}}


@pytest.mark.parametrize("front", ["rescaling", "normalization", "none"])
def test_inputs_are_judged_as_the_first_learned_layer_sees_them(front):
    # Raw pixels in [0, 255] are fine behind the model's own Rescaling(1/255) (the usual Keras image
    # recipe) or an adapted Normalization layer; fed straight to a Conv2D they are not.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(256, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, 256)
    layers = {"rescaling": [keras.layers.Rescaling(1 / 255)], "none": [],
              "normalization": [keras.layers.Normalization()]}[front]
    if front == "normalization":
        layers[0].adapt(x)
    model = keras.Sequential([keras.Input((8, 8, 3)), *layers, keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    for train_data in (None, (x, y)):  # measured in the train step, or on the host before training
        tw, rec, _ = fit(model, x, y, config=NORMALIZED, epochs=1, batch_size=32,
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                         callback_kwargs={"train_data": train_data})
        assert rec.with_key("input_sum")  # measured, not skipped
        assert ("not_normalized" in fired(tw)) == (front == "none"), (front, train_data is None)
