"""Keras tests run on the TensorFlow backend in this process; the torch backend and
``MirroredStrategy`` run in subprocesses (a backend and logical devices are fixed at import)."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
