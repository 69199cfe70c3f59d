"""A trainable variable that gets no gradient (a head ``call`` never uses) is not a learning rate
that is too low: ``small_updates`` and ``unchanged_tensor`` stay silent about it, and one warning
names it (TensorFlow backend). A branch whose gradient is there but zero still fires
(``test_keras_faults``)."""

import logging

import keras
import pytest

from keras_kit import classification, fired, fit, mlp

pytestmark = pytest.mark.keras
pytest.importorskip("keras")

UPDATE_RULES = {"rules": {"small_updates": {}, "unchanged_tensor": {}}}


class SpareHead(keras.Model):
    """A hidden layer and a softmax head, plus a second, trainable head that ``call`` never uses."""

    def __init__(self) -> None:
        super().__init__(name="net")
        keras.utils.set_random_seed(0)
        self.hidden = keras.layers.Dense(32, activation="relu", name="hidden")
        self.head = keras.layers.Dense(3, activation="softmax", name="head")
        self.spare = keras.layers.Dense(2, name="spare")

    def build(self, input_shape) -> None:
        self.hidden.build(input_shape)
        self.head.build((None, 32))
        self.spare.build((None, 32))

    def call(self, x):
        return self.head(self.hidden(x))


def warnings_about_no_gradient(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "got no gradient" in r.getMessage()]


@pytest.mark.parametrize("config", [None, UPDATE_RULES], ids=["default rules", "update rules"])
def test_an_unused_head_gets_one_warning_and_no_learning_rate_advice(config, caplog):
    caplog.set_level(logging.WARNING, logger="tripwire")
    model = SpareHead()
    model.build((None, 20))
    x, y = classification(n=1024)
    tw, rec, _ = fit(model, x, y, config=config, epochs=1)
    assert tw.findings == []
    (warning,) = warnings_about_no_gradient(caplog)
    assert warning.startswith("tripwire: 2 trainable parameters got no gradient at step 0 (net/spare/kernel, "
                              "net/spare/bias)")
    used = {"net/hidden/kernel", "net/hidden/bias", "net/head/kernel", "net/head/bias"}
    ratios = rec.with_key("update_ratio")
    assert len(ratios) >= 4 and all(set(s.stats["update_ratio"]) == used for s in ratios)


def test_a_model_whose_variables_all_get_gradients_gets_no_warning(caplog):
    caplog.set_level(logging.WARNING, logger="tripwire")
    x, y = classification(n=512)
    tw, _, _ = fit(mlp(), x, y, config=UPDATE_RULES, epochs=1)
    assert fired(tw) == {} and warnings_about_no_gradient(caplog) == []
