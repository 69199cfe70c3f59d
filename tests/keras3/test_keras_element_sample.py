"""Keras keeps a bounded sample of each large weight as its snapshot (TensorFlow backend)."""

import keras
import numpy as np
import pytest

from keras_kit import Recorder, classification
from tripwire import KerasTripwire
from tripwire.element_sample import SNAPSHOT_ELEMENTS

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
pytest.importorskip("tensorflow")


def wide(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(512, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def test_the_snapshot_of_a_large_kernel_is_a_bounded_sample_and_its_update_ratio_stays_close():
    class Weights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = [self.model.trainable_variables[0].numpy().copy()]

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(self.model.trainable_variables[0].numpy().copy())

    x, y = classification(n=64 * 12)
    model = wide()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    tw = KerasTripwire({"rules": {"small_updates": {}, "unchanged_tensor": {}}}, interval=4, log_dir=False)
    rec, weights = Recorder(tw), Weights()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[weights, tw])
    kernel = model.trainable_variables[0]
    snapshots = {tuple(s.shape) for s in tw.collector.params.snapshots}
    assert int(np.prod(kernel.shape)) > SNAPSHOT_ELEMENTS and (SNAPSHOT_ELEMENTS,) in snapshots
    assert sum(int(np.prod(s.shape)) for s in tw.collector.params.snapshots) < int(np.prod(kernel.shape))
    got = rec.series("update_ratio", kernel.path)
    w = weights.seen
    exact = [np.linalg.norm(w[t + 1] - w[t]) / np.linalg.norm(w[t]) for t in (0, 4, 8)]
    assert [step for step, _ in got] == [0, 4, 8]
    assert [v for _, v in got] == pytest.approx(exact, rel=0.05)  # 1/sqrt(4096) = 1.6% expected
    assert [v for _, v in got] != pytest.approx(exact, rel=1e-6)  # sampled, not exact


def test_nan_in_an_element_the_sample_leaves_out_is_still_seen():
    from tripwire.callbacks.keras.buffer import Layout
    from tripwire.callbacks.keras.params import ParamStats
    from tripwire.stats import Need

    dense = keras.layers.Dense(512)
    dense.build((None, 20))
    stats = ParamStats([Need("update_ratio"), Need("weight_nonfinite")], dense.trainable_variables, Layout("pre"),
                       Layout("post"), loss_scaled=False)
    stats.allocate(None)
    kept = set(stats.kept[0].tolist())
    outside = next(i for i in range(20 * 512) if i not in kept)
    kernel = dense.kernel.numpy().reshape(-1)
    kernel[outside] = np.nan
    dense.kernel.assign(kernel.reshape(20, 512))
    previous = np.ones(2, "float32")
    assert float(stats.before_update(previous, exact=False)[stats.weight_nonfinite]) == 1.0


def test_unchanged_on_a_sampled_kernel_tells_a_still_one_from_a_moving_one():
    from tripwire.callbacks.keras.buffer import Layout
    from tripwire.callbacks.keras.params import ParamStats
    from tripwire.stats import Need

    dense = keras.layers.Dense(512)
    dense.build((None, 20))
    need = Need("weight_unchanged", (("atol", 1e-8), ("rtol", 1e-5)))
    stats = ParamStats([need], dense.trainable_variables, Layout("pre"), Layout("post"), loss_scaled=False)
    stats.allocate(None)
    start = stats.unchanged[0][1]

    def take_snapshot():
        previous = np.array([np.sum(s.numpy().astype("float64") ** 2) for s in stats.snapshots], "float32")
        return list(np.asarray(stats.before_update(previous, exact=False)[start]))

    take_snapshot()
    assert take_snapshot() == [1.0, 1.0]  # nothing moved
    dense.kernel.assign(dense.kernel.numpy() + 1e-3)  # every element moved (as an update moves them)
    assert take_snapshot() == [0.0, 1.0]
