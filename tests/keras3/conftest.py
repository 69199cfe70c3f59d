"""Keras tests run on the TensorFlow backend in this process; the torch backend and
``MirroredStrategy`` run in subprocesses (a backend and logical devices are fixed at import)."""

import importlib.util
import os

if importlib.util.find_spec("keras") is None:  # the framework-free env: nothing here can run
    collect_ignore_glob = ["*.py"]

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
