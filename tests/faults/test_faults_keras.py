"""Items 2 and 3 for Keras 3 (TensorFlow backend): a broken user rule and a dead webhook inside a
real ``model.fit``. The Lightning forms, with timings, are in ``test_faults_rules.py`` and
``test_faults_alerts.py``."""

from __future__ import annotations

import logging
import os
import re

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

import numpy as np

import fault_servers
from figures import tally
from tripwire import KerasTripwire, RuleError

pytestmark = pytest.mark.keras

EPOCHS, BATCHES = 2, 16
SUMMARY = re.compile(r"tripwire: alerts: webhook (\d+) delivered, (\d+) undelivered")


def fit(callback: KerasTripwire) -> keras.callbacks.History:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCHES * 32, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    return model.fit(x, y, batch_size=32, epochs=EPOCHS, verbose=0, callbacks=[callback])


@pytest.mark.parametrize("cls", ["RaisesAfter", "ReturnsNone", "UnserializableEvidence"])
def test_broken_user_rule_is_disabled_once_and_fit_goes_on(cls, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tripwire")
    cb = KerasTripwire({"interval": 2, "rules": {"broken": {"type": f"user_rules:{cls}"}}}, log_dir=tmp_path)
    history = fit(cb)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "rule broken " in r.getMessage()]
    tally("rules.fits_with_broken_rule", 1)
    assert len(history.history["loss"]) == EPOCHS
    assert len(errors) == 1 and "broken" in cb.monitor.engine.disabled


def test_strict_stops_with_an_error_naming_the_rule(tmp_path):
    cb = KerasTripwire({"interval": 2, "rules": {"broken": {"type": "user_rules:RaisesAfter", "after": 4}}},
                       log_dir=False, strict=True)
    with pytest.raises(RuleError, match=r"'broken'.*ZeroDivisionError"):
        fit(cb)


def test_hanging_webhook_costs_the_fit_nothing_but_the_bounded_wait_at_close(caplog):
    caplog.set_level(logging.INFO, logger="tripwire")
    proc, port = fault_servers.start("hang")
    try:
        # re-armed at every clear and never rate-limited: every firing reaches the hanging webhook
        cb = KerasTripwire({"interval": 1, "rules": {"flap": {"type": "user_rules:Flapping", "actions": ["alert"],
                                                              "rearm_after": 1}},
                            "actions": {"log": None, "webhook": {"url": f"http://127.0.0.1:{port}/hook"},
                                        "queue_size": 4, "rate_limit": None}}, log_dir=False)
        history = fit(cb)
    finally:
        proc.kill()
        proc.wait()
    assert len(history.history["loss"]) == EPOCHS
    sent = len(cb.findings)
    summary = [m.groups() for r in caplog.records if (m := SUMMARY.match(r.getMessage()))]
    assert sent >= 10 and summary == [("0", str(sent))]  # one line, every alert counted
