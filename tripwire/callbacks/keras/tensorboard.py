"""Findings where Keras users already look: the log directory of ``keras.callbacks.TensorBoard``.

One callback cannot see another of the same ``fit``, so ``KerasTripwire(tensorboard=...)`` takes
the ``TensorBoard`` callback (or its ``log_dir``) and writes into its training run,
``<log_dir>/train``:

- ``tripwire/findings``: the number of findings so far, a scalar at each sample (a step up marks a finding);
- ``tripwire/<rule>``: each finding's alert line (:func:`~tripwire.alerts.channel.summary_line`) as text.

Both are at optimizer steps, where ``update_freq="batch"`` puts Keras's own ``batch_*`` scalars (its
``epoch_*`` ones are at epochs). They are written with TensorFlow's summary ops on every backend, so
TensorFlow must be installed, as for ``keras.callbacks.TensorBoard`` itself; writing needs no
``tensorboard`` package.

Example:
    >>> import keras
    >>> run_dir(keras.callbacks.TensorBoard("logs/fit")), run_dir("logs/fit")
    ('logs/fit/train', 'logs/fit/train')
    >>> run_dir(3)
    Traceback (most recent call last):
    TypeError: tensorboard=3; valid: a keras.callbacks.TensorBoard, its log_dir (a path), or None
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import keras

from tripwire.alerts.channel import summary_line
from tripwire.callbacks.torch.logger_findings import COUNT
from tripwire.finding import Finding

#: the run of ``keras.callbacks.TensorBoard`` that the findings join
RUN = "train"


def run_dir(tensorboard: Any) -> str:
    """The training run's directory of a ``keras.callbacks.TensorBoard`` or of its ``log_dir``."""
    log_dir = tensorboard.log_dir if isinstance(tensorboard, keras.callbacks.TensorBoard) else tensorboard
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(f"tensorboard={tensorboard!r}; valid: a keras.callbacks.TensorBoard, its log_dir (a path), "
                        "or None")
    return os.path.join(os.fspath(log_dir), RUN)


class FindingWriter:
    """Writes the findings of a run into a TensorBoard run directory (see the module).

    Raises:
        ImportError: TensorFlow is not installed.
    """

    def __init__(self, tensorboard: Any) -> None:
        self.directory = run_dir(tensorboard)
        if importlib.util.find_spec("tensorflow") is None:
            raise ImportError("KerasTripwire(tensorboard=...) writes with TensorFlow's summary API, as "
                              "keras.callbacks.TensorBoard does: pip install tensorflow-cpu")
        self._writer = None

    def write(self, findings: list[Finding], total: int, step: int) -> None:
        """``total`` (findings so far) at ``step``, and each new finding's line at its own step."""
        tf = importlib.import_module("tensorflow")
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.directory)
        with self._writer.as_default():
            tf.summary.write(COUNT, tf.constant(float(total)), step=step, metadata=_metadata("scalars"))
            for f in findings:
                tf.summary.write(f"tripwire/{f.rule}", tf.constant(summary_line(f)), step=f.step,
                                 metadata=_metadata("text"))
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _metadata(plugin: str) -> Any:
    """What marks a summary as TensorBoard's scalar or text (the ``tensorboard`` package's own summaries write it)."""
    from tensorflow.core.framework.summary_pb2 import SummaryMetadata

    metadata = SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata
