"""The in-graph statistics equal references computed outside the train step (TensorFlow backend)."""

import keras
import numpy as np
import pytest

from keras_kit import Recorder, classification, fit, mlp
from tripwire import KerasTripwire

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

GRADS = {"rules": {"vanishing_gradient": {}, "exploding_gradient": {}, "nonfinite": {}, "small_updates": {},
                   "weight_spread": {"type": "low_variance", "on": "weights"}}}


def reference_grads(model, weights, x, y, micro_batches=1):
    """Mean gradient over ``micro_batches`` equal slices of (x, y) at ``weights``, by variable path."""
    model.set_weights(weights)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    total = None
    for xs, ys in zip(np.array_split(x, micro_batches), np.array_split(y, micro_batches)):
        with tf.GradientTape() as tape:
            loss = loss_fn(ys, model(xs, training=True))
        g = [np.asarray(t, np.float64) for t in tape.gradient(loss, model.trainable_variables)]
        total = g if total is None else [a + b for a, b in zip(total, g)]
    return {v.path: t / micro_batches for v, t in zip(model.trainable_variables, total)}


def one_step(optimizer, *, micro_batches=1, policy=None):
    """Fit one optimizer step on 256 samples with statistics on every step; return what is needed."""
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    try:
        x, y = classification(n=256)
        model = mlp()
        model.compile(optimizer, "sparse_categorical_crossentropy")
        model.build((None, 20))
        before = [w.copy() for w in model.get_weights()]
        _tw, rec, _ = fit(model, x, y, config=GRADS, interval=1, epochs=1, batch_size=256 // micro_batches,
                         optimizer=False, shuffle=False)
        after = model.get_weights()
        ref = reference_grads(model, before, x, y, micro_batches)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    steps = rec.with_key("grad_norm")
    return model, before, after, ref, steps


def _check_grads(sample, ref, rel=1e-4):
    for path, g in ref.items():
        assert sample.stats["grad_norm"][path] == pytest.approx(np.linalg.norm(g), rel=rel), path
        assert sample.stats["grad_abs_mean"][path] == pytest.approx(np.abs(g).mean(), rel=rel), path
    global_norm = np.sqrt(sum(np.sum(g ** 2) for g in ref.values()))
    assert sample.stats["grad_global_norm"][None] == pytest.approx(global_norm, rel=rel)
    assert sample.stats["grad_nonfinite"][None] == 0.0


def test_gradients_equal_a_gradient_tape_reference():
    _, _, _, ref, steps = one_step(keras.optimizers.SGD(0.1))
    assert [s.step for s in steps] == [0]
    _check_grads(steps[0], ref)


def test_gradients_are_taken_before_clipping_and_updates_after():
    lr = 0.1
    model, before, after, ref, steps = one_step(keras.optimizers.SGD(lr, global_clipnorm=1e-3))
    _check_grads(steps[0], ref)  # unclipped
    kernel = model.trainable_variables[0].path
    w0, w1 = before[0], after[0]
    assert steps[0].stats["update_ratio"][kernel] == pytest.approx(np.linalg.norm(w1 - w0) / np.linalg.norm(w0),
                                                                  rel=1e-4)
    assert np.linalg.norm(w1 - w0) <= lr * 1e-3 * 1.0001  # the update itself was clipped


def test_loss_scale_factor_is_divided_out():
    _, _, _, ref, steps = one_step(keras.optimizers.SGD(0.1, loss_scale_factor=1024.0))
    _check_grads(steps[0], ref)


def test_mixed_precision_gradients_are_unscaled():
    model, _, _, ref, steps = one_step(keras.optimizers.SGD(0.1), policy="mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    _check_grads(steps[0], ref, rel=2e-2)
    assert steps[0].stats["amp_skipped"][None] == 0.0


def test_gradient_accumulation_reports_the_mean_gradient_once_per_real_step():
    _, _, _, ref, steps = one_step(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2), micro_batches=2)
    assert [s.step for s in steps] == [0]  # two micro-batches, one optimizer step
    _check_grads(steps[0], ref)


def test_weight_statistics_are_read_after_the_update():
    _, _, after, _, steps = one_step(keras.optimizers.SGD(0.1))
    model_paths = [k for k in steps[0].stats["weight_var"]]
    assert len(model_paths) == len(after)
    for path, w in zip(model_paths, after):
        assert steps[0].stats["weight_var"][path] == pytest.approx(np.var(w), rel=1e-4)


def test_activation_statistics_match_numpy_on_the_same_batch():
    x, y = classification(n=128)
    model = mlp(hidden=(16, 16), bias_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=3))
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    probe = keras.Model(model.inputs[0], [model.get_layer("hidden0").output, model.get_layer("hidden1").output])
    expected = [float(np.mean((np.asarray(a) > 0).mean(0) < 0.1)) for a in probe(x)]
    config = {"rules": {"dead_relu": {"threshold_inactivity": 0.1}}}
    _, rec, _ = fit(model, x, y, config=config, interval=1, epochs=1, batch_size=128, optimizer=False)
    key = "act_dead_frac[inactive_below=0.1]"
    got = [rec.series(key, "hidden0")[0][1], rec.series(key, "hidden1")[0][1]]
    assert got == pytest.approx(expected)
    assert 0 < expected[0] < 1  # a non-trivial mix of dead and live units


def test_data_totals_cover_every_sampled_batch():
    x, y = classification(n=640)
    config = {"rules": {"class_imbalance": {}, "not_normalized": {}}}
    _, rec, _ = fit(mlp(), x, y, config=config, interval=1, epochs=1, batch_size=64, shuffle=False)
    counts = {c: sum(s.stats["label_count"][c] for s in rec.with_key("label_count")) for c in ("0", "1", "2")}
    assert [counts[c] for c in ("0", "1", "2")] == np.bincount(y).tolist()
    sums = [sum(s.stats["input_sum"][str(f)] for s in rec.with_key("input_sum")) for f in range(20)]
    assert sums == pytest.approx(x.sum(0), abs=1e-3)
    assert min(s.stats["input_min"]["0"] for s in rec.with_key("input_min")) == pytest.approx(x[:, 0].min())


def test_one_host_read_per_interval():
    from tripwire.callbacks.keras import collector as keras_collector

    reads = []
    original = keras_collector.PackedBuffer.read
    keras_collector.PackedBuffer.read = lambda self: reads.append(1) or original(self)
    try:
        x, y = classification(n=64 * 40)
        fit(mlp(), x, y, config=GRADS, interval=10, epochs=1, batch_size=64)
    finally:
        keras_collector.PackedBuffer.read = original
    assert len(reads) == 40 // 10 + 1  # one per interval, one at the end of training


def test_update_ratio_between_samples_uses_the_step_before():
    class Weights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = [self.model.trainable_variables[0].numpy().copy()]

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(self.model.trainable_variables[0].numpy().copy())

    x, y = classification(n=64 * 12)
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    tw = KerasTripwire({"rules": {"small_updates": {}}}, interval=4, log_dir=False)
    rec, weights = Recorder(tw), Weights()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[weights, tw])
    got = rec.series("update_ratio", "net/hidden0/kernel")
    assert [step for step, _ in got] == [0, 4, 8]
    w = weights.seen  # w[t]: the weights step t starts from
    assert [v for _, v in got] == pytest.approx(
        [np.linalg.norm(w[t + 1] - w[t]) / np.linalg.norm(w[t]) for t in (0, 4, 8)], rel=1e-4)


def test_unchanged_check_settles_by_norms_then_distance_then_elementwise():
    from tripwire.callbacks.keras.buffer import Layout
    from tripwire.callbacks.keras.params import ParamStats
    from tripwire.stats import Need

    dense = keras.layers.Dense(4, bias_initializer="ones")
    dense.build((None, 4))
    need = Need("weight_unchanged", (("atol", 1e-8), ("rtol", 1e-5)))
    stats = ParamStats([need], dense.trainable_variables, Layout("pre"), Layout("post"), loss_scaled=False)
    stats.allocate(None)
    start = stats.unchanged[0][1]

    def take_snapshot():
        previous = np.array([np.sum(s.numpy() ** 2) for s in stats.snapshots], "float32")
        return list(np.asarray(stats.before_update(previous, exact=False)[start]))

    take_snapshot()  # snapshot = the current weights
    dense.kernel.assign(dense.kernel.numpy()[::-1])  # a permutation: same norm, other elements
    assert take_snapshot() == [0.0, 1.0]  # kernel changed (found by distance), bias unchanged
    dense.kernel.assign(dense.kernel.numpy() * 2.0)
    dense.bias.assign(dense.bias.numpy() * 2.0)
    assert take_snapshot() == [0.0, 0.0]  # both norms moved: changed without the elementwise pass
    assert take_snapshot() == [1.0, 1.0]  # nothing moved since
    kernel = dense.kernel.numpy()
    kernel[0, 0] += 1e-6 * abs(kernel[0, 0])  # within rtol, found by the elementwise pass
    dense.kernel.assign(kernel)
    kernel[1, 1] += 0.5  # one element far off: allclose fails
    assert take_snapshot() == [1.0, 1.0]
    dense.kernel.assign(kernel)
    assert take_snapshot() == [0.0, 1.0]


def test_learning_rate_is_the_schedules_value_at_the_sampled_step():
    x, y = classification(n=512)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=1, decay_rate=0.9)
    config = {"rules": {"small_updates": {}}}
    _, rec, _ = fit(mlp(), x, y, config=config, interval=4, epochs=1, optimizer=keras.optimizers.SGD(schedule))
    lrs = rec.series("lr")
    assert len(lrs) >= 3
    for step, lr in lrs:
        assert lr == pytest.approx(1e-2 * 0.9 ** step, rel=1e-4), step


def test_parameter_dimensions_reach_the_rules_once_so_norm_shifts_are_vectors():
    import keras

    from tripwire import KerasTripwire
    from tripwire.stats import Sample

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="fc"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(2, name="out")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    tw = KerasTripwire({"rules": {"vanishing_gradient": {}}, "interval": 2}, log_dir=False)
    seen: list[Sample] = []
    process = tw.monitor.process
    tw.monitor.process = lambda sample: (seen.append(sample), process(sample))[1]
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    model.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0, callbacks=[tw])
    shapes = [s.series("param_ndim") for s in seen if s.series("param_ndim")]
    assert len(shapes) == 1
    by_tail = {name.split("/", 1)[-1]: ndim for name, ndim in shapes[0].items()}
    assert by_tail["fc/kernel"] == 2 and by_tail["bn/gamma"] == 1 and by_tail["fc/bias"] == 1, shapes[0]
