"""Runs KerasTripwire under a 2-replica MirroredStrategy on 2 logical CPUs; prints one JSON line.

Logical devices must be set before TensorFlow initializes, hence a separate process
(see test_keras_distributed.py).
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from keras_kit import Recorder, classification, mlp
from tripwire import KerasTripwire, RuleTriggered

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
x, y = classification(n=1024)
out = {"replicas": strategy.num_replicas_in_sync}


def run(config, lr, epochs=3, batch_size=64, interval=2, **fit_kwargs):
    with strategy.scope():
        model = mlp()
        model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy")
    tw = KerasTripwire(config, interval=interval, log_dir=False)
    rec = Recorder(tw)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[tw], **fit_kwargs)
    return model, tw, rec, history


# 1. statistics are combined across replicas: counts add up, gradients match a reference
with strategy.scope():
    model = mlp()
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
tw = KerasTripwire({"rules": {"vanishing_gradient": {}, "class_imbalance": {}}}, interval=1, log_dir=False)
rec = Recorder(tw)
model.fit(x[:256], y[:256], batch_size=256, epochs=1, shuffle=False, verbose=0, callbacks=[tw])
sample = rec.with_key("grad_norm")[0]
halves = []
for xs, ys in ((x[:128], y[:128]), (x[128:256], y[128:256])):
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy()(ys, model(xs, training=True))
    halves.append([float(tf.norm(g)) for g in tape.gradient(loss, model.trainable_variables)])
out["grad_norm"] = [sample.stats["grad_norm"][v.path] for v in model.trainable_variables]
out["grad_norm_reference"] = [float(np.mean(pair)) for pair in zip(*halves)]
counts = rec.with_key("label_count")[0].stats["label_count"]
out["labels_counted"] = sum(counts.values())

# 2. a NaN stops the run once, in the first epoch
_, tw, rec, history = run({"rules": {"nonfinite": {}}}, lr=1e8)
out["nan_epochs"] = len(history.history["loss"])
out["nan_stopped_by"] = tw.stopped_by.rule if tw.stopped_by else None
out["nan_findings"] = len(tw.findings)

# 3. validation confusion counts every validation sample once
_, tw, rec, _ = run({"rules": {"classifier_confusion": {}}}, lr=0.1, epochs=1, validation_data=(x[:320], y[:320]))
out["confusion_total"] = sum(rec.with_key("confusion")[0].stats["confusion"].values())

# 4. the raise action raises once, out of fit
try:
    run({"rules": {"nonfinite": {"actions": ["raise"]}}}, lr=1e8)
    out["raised"] = None
except RuleTriggered as exc:
    out["raised"] = exc.finding.rule

# 5. loss_spike is not judged under tf.distribute: a warning says so, and training goes on
import logging


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record) -> None:
        self.messages.append(record.getMessage())


kept = Kept()
logging.getLogger("tripwire").addHandler(kept)
model, tw, _, history = run({"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}}}, lr=0.1, epochs=1)
out["spike_notice"] = [m for m in kept.messages if "loss_spike is not judged" in m]
out["spike_trained"] = {"steps": int(model.optimizer.iterations.numpy()), "off": list(tw.monitor.guard.disabled)}

print("RESULT " + json.dumps(out))
