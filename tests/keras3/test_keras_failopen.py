"""Fail open: a failure inside KerasTripwire's own instrumentation never changes or stops training.

Each row of ``POINTS`` makes one tripwire function raise (``monkeypatch``) and checks that
``fit`` completes with exactly the weights of the same seeded fit without tripwire, that one
warning names the part switched off, and that ``strict=True`` hands the exception to the caller.
"""

import logging

import keras
import numpy as np
import pytest

from keras_kit import Recorder, classification, mlp
from tripwire import KerasTripwire
from tripwire.callbacks.keras import activations as keras_activations
from tripwire.callbacks.keras import callback as keras_callback
from tripwire.callbacks.keras import collector as keras_collector
from tripwire.callbacks.keras import data as keras_data
from tripwire.callbacks.keras import optimizer as keras_optimizer
from tripwire.callbacks.keras import params as keras_params
from tripwire.callbacks.keras import spike as keras_spike
from tripwire.callbacks.keras.collector import Collector
from tripwire.callbacks.keras.optimizer import TripwireApply

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

X, Y = classification(n=48, features=6)  # 3 steps of 16 per epoch
XV, YV = classification(n=32, features=6, seed=1)
#: rules that need every kind of statistic: activations, gradients, weights after the update, learning
#: rate, labels, confusion matrix, initialization, validation loss, spikes judged at every step (with the
#: skip_step gate on the update; the warm-up outlasts these runs)
RULES = {"rules": {**{name: {} for name in ("dead_relu", "vanishing_gradient", "small_updates", "class_imbalance",
                                            "classifier_confusion", "poor_initialization", "overfit")},
                   "loss_spike": {"actions": ["alert", "skip_step"]}}}


class Injected(RuntimeError):
    """The failure a test plants in tripwire's code."""


def boom(*args, **kwargs):
    raise Injected("planted failure")


def raise_for(name, original):
    """``original``, raising when one of its string arguments is ``name`` (``_wrap(model, name, hook)``)."""
    def patched(*args, **kwargs):
        if name in [a for a in args if isinstance(a, str)]:
            raise Injected(f"planted failure at {name}")
        return original(*args, **kwargs)
    return patched


def failing_site(original):
    """``ActivationProbes._site_values`` failing (while the step is traced) for layer hidden0 only."""
    def patched(self, i, wanted, y):
        if self.sites[i].name == "hidden0":
            raise Injected("planted failure at hidden0")
        return original(self, i, wanted, y)
    return patched


def probe_for(original):
    """``_probe`` failing (wrapping the layer) for layer hidden0 only."""
    def patched(fn, index, record, guard, part):
        if "hidden0" in part:
            raise Injected("planted failure at hidden0")
        return original(fn, index, record, guard, part)
    return patched


def not_xla_compilable(original):
    """The gradient statistics with an op XLA cannot compile: the first call of the step fails."""
    def patched(self, *args):
        values = original(self, *args)
        first = min(values)
        value = tf.convert_to_tensor(values[first])
        values[first] = tf.ensure_shape(tf.numpy_function(lambda v: v, [value], tf.float32, stateful=False),
                                        value.shape)
        return values
    return patched


def fails_after_the_update(original):
    """Weight statistics with an op that fails while the step runs, after the whole update (it reads
    the updated weights and the optimizer's step counter): that step must not be trained twice."""
    def patched(self, optimizer, *args):
        before, after, sampled, written = original(self, optimizer, *args)

        def failing_after():
            after()
            updated = [v.value for v in self.params.variables] + [optimizer.iterations.value]
            total = sum(keras.ops.sum(keras.ops.cast(v, "float32")) for v in updated)
            check = tf.debugging.check_numerics(total * np.float32(np.nan), "planted failure")
            self.buffer.variable.assign(self.buffer.variable.value + 0.0 * check)

        return before, failing_after, sampled, written
    return patched


# (id, where, attribute, replacement(original) -> patched, part named in the warning, callback kwargs,
#  compile kwargs, exception strict raises)
POINTS = [
    ("collector", Collector, "_lay_out_params", lambda o: boom, "statistics setup", {}, {}, Injected),
    ("probe-install", keras_activations, "_probe", probe_for, "activation probe on layer 'hidden0'", {}, {},
     Injected),
    ("probe-statistics", keras_activations.ActivationProbes, "_site_values", failing_site,
     "activation probe on layer 'hidden0'", {}, {}, Injected),
    ("optimizer-hook", keras_optimizer, "attach", lambda o: boom, "optimizer hook", {}, {}, Injected),
    ("train_step-hook", keras_collector, "_wrap", lambda o: raise_for("train_step", o), "train_step hook", {}, {},
     Injected),
    ("test_step-hook", keras_collector, "_wrap", lambda o: raise_for("test_step", o), "test_step hook", {}, {},
     Injected),
    ("compute_loss-hook", keras_collector, "_wrap", lambda o: raise_for("compute_loss", o), "compute_loss hook", {},
     {}, Injected),
    ("before-update", keras_params.ParamStats, "grads", lambda o: boom, "statistics in the train step", {}, {},
     Injected),
    ("after-update", keras_params.ParamStats, "after_update", lambda o: boom, "statistics in the train step", {}, {},
     Injected),
    ("confusion", keras_data.Confusion, "add", lambda o: boom, "confusion matrix", {}, {}, Injected),
    ("train-function", Collector, "_train_step", lambda o: boom, "instrumented train function", {}, {}, Injected),
    ("xla-compile", keras_params.ParamStats, "grads", not_xla_compilable, "instrumented train function", {},
     {"jit_compile": True}, tf.errors.OpError),
    ("runtime-after-update", Collector, "_statistics", fails_after_the_update,
     "instrumented train function", {}, {}, tf.errors.InvalidArgumentError),
    ("init-statistics", keras_callback, "init_stats", lambda o: boom, "initialization statistics", {}, {}, Injected),
    ("host-data", keras_data, "host_stats", lambda o: boom, "data statistics of train_data",
     {"train_data": (X, Y)}, {}, Injected),
    ("host-confusion", keras_data, "host_confusion", lambda o: boom, "confusion matrix of validation_data",
     {"validation_data": (XV, YV)}, {}, Injected),
    ("read", Collector, "read", lambda o: boom, "reading the statistics", {}, {}, Injected),
    ("learning-rate", keras_optimizer, "learning_rate", lambda o: boom, "learning rate", {}, {}, Injected),
    ("uninstall", keras_activations.ActivationProbes, "remove", lambda o: boom, "removing the hooks", {}, {},
     Injected),
    ("spike-judgement", keras_spike.KerasSpikes, "judge", lambda o: boom, "spike judgement in the train step", {}, {},
     Injected),
    ("spike-read", keras_spike.KerasSpikes, "read", lambda o: boom, "spike judgement in the train step", {}, {},
     Injected),
]


def tiny_model(compile_kwargs):
    model = mlp(features=6, hidden=(8, 8))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", **compile_kwargs)
    model.optimizer.build(model.trainable_variables)  # else the first trace builds it, and the step is traced twice
    return model


def train(compile_kwargs, callbacks=(), model=None):
    model = model or tiny_model(compile_kwargs)
    model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(XV, YV),
              callbacks=list(callbacks))
    return model


@pytest.fixture(scope="module")
def reference_weights():
    """Weights after the same seeded fit without tripwire (the XLA-compiled fit is compared with it too:
    the tiny model's updates agree to float rounding)."""
    return train({}).get_weights()


def assert_clean(model):
    """None of tripwire's hooks is left on the model."""
    assert not isinstance(model.optimizer, TripwireApply)
    assert "train_step" not in vars(model) and "test_step" not in vars(model) and "compute_loss" not in vars(model)


def switched_off(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "tripwire" and "failed and is off" in r.getMessage()]


@pytest.mark.parametrize("where, attribute, replacement, part, callback_kwargs, compile_kwargs, raised",
                         [p[1:] for p in POINTS], ids=[p[0] for p in POINTS])
def test_a_failing_part_is_switched_off_and_training_is_unchanged(monkeypatch, caplog, tmp_path, reference_weights,
                                                                  where, attribute, replacement, part, callback_kwargs,
                                                                  compile_kwargs, raised):
    monkeypatch.setattr(where, attribute, replacement(getattr(where, attribute)))
    tw = KerasTripwire(RULES, interval=1, log_dir=False, **callback_kwargs)
    recorder = Recorder(tw)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        model = train(compile_kwargs, [tw])
    for trained, expected in zip(model.get_weights(), reference_weights):
        np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)
    messages = switched_off(caplog)
    assert len(messages) == 1 and part in messages[0], messages
    assert part in tw.monitor.guard.disabled
    # the losses and the rules fed by them keep working
    assert recorder.with_key("loss") and recorder.with_key("val_loss")
    if "hidden0" in part:  # one failing probe costs its own layer only
        dead = [s.stats[k] for s in recorder.samples for k in s.stats if k.startswith("act_dead_frac")]
        assert dead and all("hidden1" in d and "hidden0" not in d for d in dead)
    assert_clean(model)  # a failure while removing one hook does not keep the others
    if part == "removing the hooks":  # the model trains, saves and loads as usual
        model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
        model.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras")
        np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("where, attribute, replacement, part, callback_kwargs, compile_kwargs, raised",
                         [p[1:] for p in POINTS], ids=[p[0] for p in POINTS])
def test_strict_raises_the_failure(monkeypatch, where, attribute, replacement, part, callback_kwargs, compile_kwargs,
                                   raised):
    monkeypatch.setattr(where, attribute, replacement(getattr(where, attribute)))
    tw = KerasTripwire(RULES, interval=1, log_dir=False, strict=True, **callback_kwargs)
    model = tiny_model(compile_kwargs)
    with pytest.raises(raised):
        train(compile_kwargs, [tw], model)
    assert_clean(model)  # the exception ends fit; the model is the user's own again
