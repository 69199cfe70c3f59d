"""Installing and removing the hooks, saving and loading, and carrying out actions."""

import os

import keras
import numpy as np
import pytest

from keras_kit import classification, fired, fit, mlp
from tripwire import KerasTripwire, RuleTriggered
from tripwire.callbacks.keras.optimizer import TripwireApply
from tripwire.record import Run

pytestmark = pytest.mark.keras
pytest.importorskip("keras")

NAN = {"rules": {"nonfinite": {}}}


def _assert_clean(model):
    assert not isinstance(model.optimizer, TripwireApply)
    assert model.get_layer("hidden0").activation is keras.activations.relu
    assert "train_step" not in vars(model) and "test_step" not in vars(model) and "compute_loss" not in vars(model)


def test_hooks_are_removed_and_the_model_saves_and_loads(tmp_path):
    x, y = classification()
    model = mlp()
    fit(model, x, y, epochs=1, validation_data=classification(n=256, seed=1))
    _assert_clean(model)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is type(model.optimizer)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), rtol=1e-6)
    loaded.fit(x, y, epochs=1, verbose=0)  # the saved optimizer state is usable


def test_checkpoint_saved_during_training_loads(tmp_path):
    x, y = classification()
    model = mlp()
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.keras"))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[KerasTripwire(interval=2, log_dir=False), saver])
    loaded = keras.models.load_model(tmp_path / "e1.keras")
    assert type(loaded.optimizer) is keras.optimizers.Adam
    assert loaded.get_layer("hidden0").activation is keras.activations.relu


def test_a_later_fit_without_the_callback_runs_clean_functions():
    x, y = classification()
    model = mlp()
    tw, _, _ = fit(model, x, y, config=NAN, epochs=1)
    buffer = tw.collector.buffer.variable
    frozen = np.array(buffer.numpy())
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(buffer.numpy(), frozen)  # nothing writes the statistics any more
    _tw2, rec, _ = fit(model, x, y, config=NAN, epochs=1, optimizer=False)  # and a new callback works again
    assert rec.with_key("grad_nonfinite")


def test_stop_action_ends_fit_within_the_interval():
    x, y = classification()
    model = mlp(bias_initializer=keras.initializers.Constant(-10.0))
    tw, _, history = fit(model, x, y, config={"rules": {"dead_relu": {"patience": 1}}}, epochs=5,
                         callback_kwargs={"stop_on": ["dead_relu"]})
    assert tw.stopped_by.rule == "dead_relu" and tw.stopped_by.step == 0  # the first step is sampled
    assert len(history.history["loss"]) == 1
    _assert_clean(model)


def test_raise_action_raises_rule_triggered_and_removes_the_hooks():
    x, y = classification()
    model = mlp()
    with pytest.raises(RuleTriggered) as info:
        fit(model, x, y, optimizer=keras.optimizers.SGD(1e8), config={"rules": {"nonfinite": {"actions": ["raise"]}}})
    assert info.value.finding.rule == "nonfinite"
    _assert_clean(model)


def test_the_end_of_fit_is_recorded_finished_or_stopped_by_a_raise(tmp_path):
    x, y = classification()
    model = mlp()
    model.compile(keras.optimizers.SGD(1e8), "sparse_categorical_crossentropy")
    tw = KerasTripwire({"rules": {"nonfinite": {"actions": ["raise"]}}}, interval=2, log_dir=tmp_path, run_name="r")
    with pytest.raises(RuleTriggered):
        model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[tw])
    end = tw.monitor.end
    assert (end.state, end.rule, end.step, end.error) == ("stopped", "nonfinite", tw.findings[0].step, "RuleTriggered")
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    tw = KerasTripwire({"rules": {"nonfinite": {}}}, interval=2, log_dir=tmp_path, run_name="f")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[tw])
    with Run(tmp_path / "f") as run:
        assert run.end.state == "finished" and run.end.step == max(tw.monitor.sampled_steps)


def test_checkpoint_action_saves_a_loadable_model(tmp_path):
    x, y = classification()
    model = mlp(kernel_initializer="ones")
    config = {"rules": {"poor_initialization": {"actions": ["checkpoint"]}}}
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    tw = KerasTripwire(config, interval=2, log_dir=tmp_path, run_name="run")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[tw])
    saved = tmp_path / "run" / "tripwire-poor_initialization-step0.keras"
    assert saved.is_file()
    assert type(keras.models.load_model(saved).optimizer) is keras.optimizers.Adam
    assert os.path.isfile(tw.monitor.config.log_dir + "/run/record.sqlite")


def test_steps_per_execution_still_samples():
    x, y = classification()
    _tw, rec, _ = fit(mlp(), x, y, config={"rules": {"vanishing_gradient": {}}}, interval=4, epochs=1,
                     compile_kwargs={"steps_per_execution": 8})
    steps = [s.step for s in rec.with_key("grad_norm")]
    assert steps and all(step % 4 == 0 for step in steps)


def test_only_sampled_steps_run_the_instrumented_train_function():
    class Spy(keras.callbacks.Callback):  # after tripwire: sees the function each step will run
        def __init__(self, tw):
            super().__init__()
            self.tw, self.instrumented = tw, []

        def on_train_batch_begin(self, batch, logs=None):
            self.instrumented.append(self.model.train_function is self.tw.collector._instrumented)

    x, y = classification(n=64 * 20)
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    tw = KerasTripwire({"rules": {"vanishing_gradient": {}, "small_updates": {}}}, interval=5, log_dir=False)
    spy = Spy(tw)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[tw, spy])
    assert [step for step, hit in enumerate(spy.instrumented) if hit] == [0, 5, 10, 15]


def test_subclassed_model_gets_gradient_and_activation_statistics():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu", bias_initializer=keras.initializers.Constant(-10.0))
            self.out = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(x))

    x, y = classification()
    tw, rec, _ = fit(Net(), x, y, config={"rules": {"dead_relu": {}, "vanishing_gradient": {}}}, epochs=1)
    assert "dead_relu" in fired(tw)
    assert rec.with_key("grad_norm")


def test_state_dict_resumes_patience_in_a_new_callback():
    import json

    x, y = classification(n=128)
    model = mlp(bias_initializer=keras.initializers.Constant(-10.0))
    config = {"rules": {"dead_relu": {"patience": 3}}}
    first, _, _ = fit(model, x, y, config=config, interval=2, epochs=1, batch_size=64)  # one sample (step 0)
    assert first.findings == []
    state = json.loads(json.dumps(first.state_dict()))  # plain JSON: store it next to your checkpoint
    second = KerasTripwire(config, interval=2, log_dir=False)
    second.load_state_dict(state)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[second])  # samples at steps 2 and 4
    assert [f.step for f in second.findings] == [4]  # the third dead sample in a row, counting the first run's
