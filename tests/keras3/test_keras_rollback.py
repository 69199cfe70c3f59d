"""`rollback` in Keras `fit`: a batch of NaN inputs at step 30 (a corrupt record) makes the loss
and then every weight NaN; with `nonfinite` -> `rollback` the weights and Adam's moments of the state
kept at step 20 come back and training goes on with the next batches."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_kit import classification, fit, mlp

pytestmark = pytest.mark.keras

POISONED = 30  # the optimizer step (0-based) whose batch is corrupt
BATCH = 32
ROLLBACK = {"rules": {"nonfinite": {"actions": ["alert", {"rollback": {"every": 10}}]}}}


def poisoned_data():
    x, y = classification()
    x = x[: BATCH * 50].copy()
    x[POISONED * BATCH:(POISONED + 1) * BATCH] = np.nan
    return x, y[: BATCH * 50]


def rollback_report() -> dict:
    """A rollback run on this process's backend, as JSON-safe values (the JAX and torch backend
    scripts report it; ``test_keras_jax_backend`` and ``test_keras_torch_backend`` check it)."""
    x, y = poisoned_data()
    model = mlp()
    tw, _, _ = fit(model, x, y, config=ROLLBACK, interval=5, epochs=1, batch_size=BATCH, shuffle=False)
    return {"findings": [[f.kind, f.step, f.evidence.get("restored_step")] for f in tw.findings
                         if f.kind in ("nonfinite", "rollback")],
            "finite": bool(all(np.isfinite(w).all() for w in model.get_weights())),
            "loss": float(model.evaluate(x[:BATCH * POISONED], y[:BATCH * POISONED], verbose=0))}


def test_rollback_restores_the_weights_before_the_nonfinite_step_and_training_goes_on():
    x, y = poisoned_data()
    model = mlp()
    tw, _, _ = fit(model, x, y, config=ROLLBACK, interval=5, epochs=1, batch_size=BATCH, shuffle=False)
    nonfinite, done, *_ = tw.findings
    assert nonfinite.kind == "nonfinite" and nonfinite.step == POISONED
    assert done.kind == "rollback" and done.evidence["restored_step"] == 20
    assert done.evidence["skipped"] == [21, POISONED]
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.optimizer.variables)
    clean = mlp()
    fit(clean, x[: POISONED * BATCH], y[: POISONED * BATCH], config=None, epochs=1, batch_size=BATCH,
        shuffle=False)
    loss = model.evaluate(x[:BATCH * 20], y[:BATCH * 20], verbose=0)
    assert loss < 1.5 * clean.evaluate(x[:BATCH * 20], y[:BATCH * 20], verbose=0)


def test_without_rollback_the_weights_stay_nan():
    x, y = poisoned_data()
    model = mlp()
    fit(model, x, y, config={"rules": {"nonfinite": {"actions": ["alert"]}}}, interval=5, epochs=1, batch_size=BATCH,
        shuffle=False)
    assert not all(np.isfinite(w).all() for w in model.get_weights())
