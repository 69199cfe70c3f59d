"""Runs KerasTripwire on the torch backend of Keras; prints one JSON line (see test_keras_torch_backend.py).

The backend is fixed when Keras is first imported, hence a separate process.
"""

import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import torch

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

# 1. gradients of one full-batch step equal torch autograd's
model = mlp()
model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
model.build((None, 20))
before = [w.copy() for w in model.get_weights()]
tw, rec, _ = fit(model, x[:256], y[:256], config={"rules": {"vanishing_gradient": {}}}, interval=1, epochs=1,
                 batch_size=256, optimizer=False, shuffle=False)
model.set_weights(before)
loss = keras.losses.SparseCategoricalCrossentropy()(torch.as_tensor(y[:256]), model(torch.as_tensor(x[:256])))
grads = torch.autograd.grad(loss, [v.value for v in model.trainable_variables])
out["grad_norm"] = [rec.with_key("grad_norm")[0].stats["grad_norm"][v.path] for v in model.trainable_variables]
out["grad_norm_reference"] = [float(g.norm()) for g in grads]

# 2. only every interval-th optimizer step is sampled, also under gradient accumulation
tw, rec, _ = fit(mlp(), x, y, config={"rules": {"vanishing_gradient": {}}}, interval=5, epochs=1,
                 optimizer=keras.optimizers.Adam(1e-3, gradient_accumulation_steps=2))
out["sampled_steps"] = [s.step for s in rec.with_key("grad_norm")]

# 3. planted faults
tw, _, _ = fit(mlp(bias_initializer=keras.initializers.Constant(-10.0)), x, y, config={"rules": {"dead_relu": {}}},
               epochs=1)
out["dead_relu"] = "dead_relu" in fired(tw)
tw, _, history = fit(mlp(classes=1, head=None), x, y.astype("float32"), loss="mse", epochs=4,
                     optimizer=keras.optimizers.SGD(10.0), config={"rules": {"nonfinite": {}}})
out["nan_stopped_by"] = tw.stopped_by.rule if tw.stopped_by else None
out["nan_epochs"] = len(history.history["loss"])
xi, yi = classification(n=2048)
yi = (np.arange(2048) % 40 == 0).astype("int64")
tw, _, _ = fit(mlp(classes=2), xi, yi, config={"rules": {"class_imbalance": {}}}, epochs=1)
out["class_imbalance"] = "class_imbalance" in fired(tw)

# 4. tripwire.observe works in eager torch steps (here from a loss function)
import tripwire


def observed_loss(y_true, y_pred):
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
    tripwire.observe("batch_loss", keras.ops.mean(loss))
    return loss


tw, rec, _ = fit(mlp(), x, y, config={"rules": {"overfit": {}}}, loss=observed_loss, interval=4, epochs=1)
out["observed"] = [round(v, 6) for _, v in rec.series("user/batch_loss")][:3]
out["observed_loss"] = [round(v, 6) for _, v in rec.series("loss")][:3]

# 5. a healthy run with validation stays silent with the default rules, and saves/loads afterwards
model = mlp(hidden=(64, 32))
tw, rec, _ = fit(model, *classification(n=3072), config=None, interval=5, epochs=4,
                 optimizer=keras.optimizers.Adam(3e-3), validation_data=classification(n=512, seed=1))
out["healthy_findings"] = [str(f) for f in tw.findings]
out["healthy_keys"] = sorted({k.split("[")[0] for s in rec.samples for k in s.stats})
out["clean_after"] = not isinstance(model.optimizer, TripwireApply) and \
    model.get_layer("hidden0").activation is keras.activations.relu
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
out["loaded_optimizer"] = type(keras.models.load_model(path).optimizer).__name__

# 6. recurrent layers train with gradient and activation statistics; their weights get gradient
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

# 7. fail open: when the statistics cannot be built inside the step, or the instrumented train function
#    fails, the part is switched off and training is exactly that of a fit without tripwire
out["failopen"] = {"in_step": fit_with_failure(ParamStats, "grads"),
                   "train_function": fit_with_failure(Collector, "_train_step")}

# rollback: a batch of NaN inputs at step 30; the state kept at step 20 comes back
from test_keras_rollback import rollback_report

out["rollback"] = rollback_report()

# loss_spike and skip_step: a batch with inputs x1000 at step 100, judged at every step
from test_keras_spike import spike_report

out["spike"] = spike_report()  # on the CPU: judged in Python floats (HostSpikeSeries)
from test_keras_spike import reduce_lr_report

out["reduce_lr"] = reduce_lr_report()
import tripwire.callbacks.keras.spike as keras_spike

keras_spike._on_torch_cpu = lambda: False  # the path of a GPU: Keras variables, eager ops, a cond on the verdict
out["spike_device"] = spike_report()

print("RESULT " + json.dumps(out))
