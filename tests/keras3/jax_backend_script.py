"""Runs KerasTripwire on the JAX backend of Keras; prints one JSON line (see test_keras_jax_backend.py).

The backend is fixed when Keras is first imported, hence a separate process.
"""

import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "jax"

import jax
import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from keras_kit import (
    RECURRENT,
    classification,
    fired,
    fit,
    fit_with_failure,
    mlp,
    recurrent_data,
    stacked_recurrent_model,
    subjects,
)
from tripwire.callbacks.keras.collector import Collector
from tripwire.callbacks.keras.optimizer import TripwireApply
from tripwire.callbacks.keras.params import ParamStats

out = {"backend": keras.backend.backend()}
x, y = classification()
GRADS = {"rules": {"vanishing_gradient": {}, "small_updates": {}, "dead_relu": {"threshold_inactivity": 0.1},
                   "spread": {"type": "low_variance", "on": "weights"}}}

# 1. one full-batch step: gradients equal jax.grad's, weights and update ratios the weights', activations numpy's
model = mlp(hidden=(16, 16), bias_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=3))
model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
before = [w.copy() for w in model.get_weights()]
h0 = np.maximum(x[:256] @ before[0] + before[1], 0)
h1 = np.maximum(h0 @ before[2] + before[3], 0)
out["dead_reference"] = [float(np.mean((h > 0).mean(0) < 0.1)) for h in (h0, h1)]
tw, rec, _ = fit(model, x[:256], y[:256], config=GRADS, interval=1, epochs=1, batch_size=256, optimizer=False,
                 shuffle=False)
after = model.get_weights()
paths = [v.path for v in model.trainable_variables]


def loss_fn(values):
    y_pred, _ = model.stateless_call(values, [v.value for v in model.non_trainable_variables], x[:256])
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y[:256], y_pred))


grads = jax.grad(loss_fn)([keras.ops.convert_to_tensor(w) for w in before])
sample = rec.with_key("grad_norm")[0]
out["sampled"] = [s.step for s in rec.with_key("grad_norm")]
out["grad_norm"] = [sample.stats["grad_norm"][p] for p in paths]
out["grad_norm_reference"] = [float(np.linalg.norm(g)) for g in grads]
out["weight_var"] = [sample.stats["weight_var"][p] for p in paths]
out["weight_var_reference"] = [float(np.var(w)) for w in after]
kernels = [i for i, p in enumerate(paths) if p.endswith("kernel")]
out["update_ratio"] = [sample.stats["update_ratio"][paths[i]] for i in kernels]
out["update_ratio_reference"] = [float(np.linalg.norm(after[i] - before[i]) / np.linalg.norm(before[i]))
                                 for i in kernels]
key = "act_dead_frac[inactive_below=0.1]"
out["dead"] = [rec.series(key, "hidden0")[0][1], rec.series(key, "hidden1")[0][1]]

# 2. only every interval-th optimizer step is sampled, also under gradient accumulation, and tripwire
#    reads the trainer's state without syncing the model (fit syncs once per epoch itself)
model = mlp()
calls = []
sync = model.jax_state_sync
model.jax_state_sync = lambda: calls.append(model._jax_state_synced) or sync()
schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=1, decay_rate=0.99)
tw, rec, _ = fit(model, x, y, config={"rules": {"vanishing_gradient": {}, "small_updates": {}}}, interval=5,
                 epochs=2, optimizer=keras.optimizers.Adam(schedule, gradient_accumulation_steps=2))
out["accumulated_steps"] = [s.step for s in rec.with_key("grad_norm")]
out["unsynced_syncs"] = calls.count(False)
out["lr"] = rec.series("lr")  # read from the trainer's state: fresh, and no sync

# 3. planted faults
tw, _, _ = fit(mlp(hidden=(32,) * 12, activation="sigmoid"), x, y, config={"rules": {"vanishing_gradient": {}}},
               epochs=1)
out["vanishing_subject"] = fired(tw)["vanishing_gradient"][0].subject if "vanishing_gradient" in fired(tw) else None
runs = tempfile.mkdtemp()
tw, _, _ = fit(mlp(bias_initializer=keras.initializers.Constant(-10.0)), x, y, epochs=1,
               config={"rules": {"dead_relu": {"actions": ["alert", "checkpoint"]}}},
               callback_kwargs={"log_dir": runs, "run_name": "run"})
out["dead_relu_subject"] = fired(tw)["dead_relu"][0].subject if "dead_relu" in fired(tw) else None
saved = [f for f in os.listdir(os.path.join(runs, "run")) if f.endswith(".keras")]
try:
    loaded = keras.models.load_model(os.path.join(runs, "run", saved[0]))
except (IndexError, ValueError):  # none saved (the failure is logged), or not a loadable file
    loaded = None
out["checkpoint_action"] = [saved, len(loaded.optimizer.variables) if loaded else None]
out["checkpoint_trained"] = loaded is not None and float(np.abs(loaded.get_layer("head").bias.numpy()).max()) > 0
tw, _, history = fit(mlp(classes=1, head=None), x, y.astype("float32"), loss="mse", epochs=4,
                     optimizer=keras.optimizers.SGD(10.0), config={"rules": {"nonfinite": {}}})
out["nan_stopped_by"] = tw.stopped_by.rule if tw.stopped_by else None
out["nan_epochs"] = len(history.history["loss"])

# 4. a healthy run with validation stays silent with the default rules, saves checkpoints during training
#    that load, and leaves the model clean
model = mlp(hidden=(64, 32))
ckpt = os.path.join(tempfile.mkdtemp(), "e{epoch}.keras")
tw, rec, _ = fit(model, *classification(n=3072), config=None, interval=5, epochs=4,
                 optimizer=keras.optimizers.Adam(3e-3), validation_data=classification(n=512, seed=1),
                 callbacks=[keras.callbacks.ModelCheckpoint(ckpt)])
out["healthy_findings"] = [str(f) for f in tw.findings]
out["healthy_keys"] = sorted({k.split("[")[0] for s in rec.samples for k in s.stats})
out["clean_after"] = not isinstance(model.optimizer, TripwireApply) and \
    model.get_layer("hidden0").activation is keras.activations.relu and \
    len(model.non_trainable_variables) == 0 and len(model.optimizer.variables) == 2 + 2 * len(model.weights)
loaded = keras.models.load_model(ckpt.format(epoch=2))
out["checkpoint_optimizer"] = [type(loaded.optimizer).__name__, len(loaded.optimizer.variables)]

# 5. recurrent layers train with gradient and activation statistics; their weights get gradient
#    statistics like any layer's (their gates, inside the time loop, are no activation sites)
model = stacked_recurrent_model()  # each kind of recurrent layer, one compilation
tw, rec, _ = fit(model, *recurrent_data("conv_lstm1d"), config={"rules": {"vanishing_gradient": {}, "dead_relu": {}}},
                 interval=1, epochs=2, batch_size=32, optimizer=False)
out["recurrent"] = {"findings": [str(f) for f in tw.findings], "off": list(tw.monitor.guard.disabled),
                    "activations": sorted(subjects(rec, "act_dead_frac"))}
for kind in RECURRENT:
    params = {v.path for v in model.get_layer(kind).trainable_variables}
    out["recurrent"][kind] = {"recurrent_kernel": any(p.endswith("recurrent_kernel") for p in params),
                              "grad_stats": params <= subjects(rec, "grad_norm")}

# 6. fail open: when the statistics cannot be built inside the step, or the instrumented train function
#    fails, the part is switched off and training is exactly that of a fit without tripwire
out["failopen"] = {"in_step": fit_with_failure(ParamStats, "grads"),
                   "train_function": fit_with_failure(Collector, "_train_step")}

# 7. rollback: a batch of NaN inputs at step 30; the state of step 20 comes back through the
#    trainer's state (synced, written, read again at the next step)
from test_keras_rollback import rollback_report

out["rollback"] = rollback_report()

# 8. loss_spike and skip_step: a batch with inputs x1000 at step 100, judged at every step inside the
#    jitted step (the loss handed over by tripwire's train step, the verdict gating stateless_apply)
from test_keras_spike import spike_report

out["spike"] = spike_report()

# 9. reduce_lr on that spike: the optimizer's rate, written from the host, is read by the next step
from test_keras_spike import reduce_lr_report

out["reduce_lr"] = reduce_lr_report()

print("RESULT " + json.dumps(out))
