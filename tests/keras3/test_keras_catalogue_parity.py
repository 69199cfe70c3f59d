"""The Keras collector keeps to the statistics catalogue: asked for every statistic there is,
``KerasTripwire`` sends exactly those ``COLLECTED["keras"]`` claims, and every slot of its packed
layouts combines across ``MirroredStrategy`` replicas with its catalogue reduction (TensorFlow
backend)."""

import keras
import numpy as np
import pytest

from keras_kit import Recorder
from tripwire import KerasTripwire
from tripwire.callbacks.keras.collector import Collector
from tripwire.stats import CATALOGUE, COLLECTED, Need

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
pytest.importorskip("tensorflow")

CLASSES, FEATURES, VOCAB = 3, 4, 20


def every_need() -> set[Need]:
    """Every statistic of the catalogue, with its default options and (where it has options) without."""
    return {Need(stat, info.options) for stat, info in CATALOGUE.items()} | {Need(stat) for stat in CATALOGUE}


#: statistics sent only once something happened: a z-score after the warm-up (64 steps by default;
#: this test trains 8), the last spiking step only when a step spiked
ONLY_WHEN_THERE = {"spike_max_z", "spike_last_step"}


def claimed_keys(framework: str) -> set[str]:
    return {need.key for need in every_need() if need.stat in COLLECTED[framework]}


def model() -> keras.Model:
    """Float features and token ids in; a layer of each activation family on the way to a softmax;
    compiled with loss scaling, whose skipped steps are a statistic too."""
    keras.utils.set_random_seed(0)
    features = keras.Input((FEATURES,), name="features")
    ids = keras.Input((5,), dtype="int32", name="ids")
    h = keras.layers.Dense(8, activation="relu", name="relu")(features)
    tokens = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, 8, name="embed")(ids))
    h = keras.layers.Dense(8, name="fc")(keras.layers.Concatenate()([h, tokens]))
    h = keras.layers.LeakyReLU(name="leaky")(h)
    h = keras.layers.Dense(8, activation="tanh", name="tanh")(h)
    h = keras.layers.Dense(8, activation="sigmoid", name="sigmoid")(h)
    out = keras.layers.Dense(CLASSES, activation="softmax", name="head")(h)
    net = keras.Model([features, ids], out, name="net")
    net.compile(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05)), "sparse_categorical_crossentropy")
    return net


def data(n: int, seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = {"features": rng.normal(size=(n, FEATURES)).astype("float32"),
         "ids": rng.integers(0, VOCAB, (n, 5)).astype("int32")}
    return x, rng.integers(0, CLASSES, n)


def test_the_callback_sends_exactly_the_statistics_the_catalogue_claims_for_keras(monkeypatch):
    callback = KerasTripwire({"rules": {}}, interval=1, log_dir=False)
    needs = every_need()
    monkeypatch.setattr(callback.monitor, "needs", lambda: needs)  # asked for everything, trees included
    recorder = Recorder(callback)
    model().fit(*data(64, seed=0), batch_size=16, epochs=2, verbose=0, validation_data=data(32, seed=1),
                callbacks=[callback])
    sent = {key for s in recorder.samples for key in s.stats}
    claimed = {key for key in claimed_keys("keras") if key.split("[")[0] not in ONLY_WHEN_THERE}
    assert sent == claimed, (
        f"claimed but not sent: {sorted(claimed - sent)}; sent but not claimed: {sorted(sent - claimed)}")


def catalogue_reduction(stat: str, values: np.ndarray) -> float:
    """What the catalogue says the run's value is, from the replicas' own ``values``: for ``same``
    (state every replica shares) their mean, which is the value where the replicas hold it and the
    mean of their own measures of a gradient, taken before ``MirroredStrategy`` sums them."""
    how = CATALOGUE[stat].reduce
    return float({"sum": np.sum, "max": np.max, "min": np.min, "mean": np.mean, "same": np.mean}[how](values))


def test_every_slot_combines_replicas_with_its_catalogue_reduction():
    net = model()
    collector = Collector(net, every_need(), interval=1)
    layouts = [collector.pre, collector.post, collector.data.layout]
    statistics = {}
    for layout in layouts:
        for slot in layout.slots:
            if not slot.key.startswith("__"):  # bookkeeping: the step stamp, sample counts, snapshot norms
                statistics[slot.key] = slot.reduce
    assert statistics, "nothing laid out"
    for key, reduce in statistics.items():
        assert reduce == CATALOGUE[key.split("[")[0]].reduce, key
    rng = np.random.default_rng(0)
    for layout in layouts:
        rows = rng.normal(size=(2, len(layout)))
        combined = layout.combine(rows)
        for i, slot in enumerate(layout.slots):
            if not slot.key.startswith("__"):
                assert combined[i] == pytest.approx(catalogue_reduction(slot.key.split("[")[0], rows[:, i])), slot.key
    # what is not in a layout is sent from the host: the losses from the logs (Keras reduces them
    # across replicas), the learning rate, shapes and initial weights (the same on every replica),
    # and the confusion matrix (summed over the replicas' copies); the spikes' own variables (not judged
    # under tf.distribute)
    host = {"loss", "loss_nonfinite", "val_loss", "lr", "param_ndim", "init_weight_gain", "init_identical_rows",
            "confusion", "spike_count", "spike_max_z", "spike_last_step"}
    laid_out = {key.split("[")[0] for key in statistics}
    assert laid_out | host == COLLECTED["keras"]
    assert not laid_out & host
