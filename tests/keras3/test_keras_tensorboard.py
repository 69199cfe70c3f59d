"""``KerasTripwire(tensorboard=...)``: the findings in the TensorBoard log directory of the same
``fit``, read back from its event files after real training."""

from pathlib import Path

import keras
import numpy as np
import pytest

from tripwire import KerasTripwire
from tripwire.alerts.channel import summary_line

pytestmark = pytest.mark.keras
tf = pytest.importorskip("tensorflow")


def events(run: Path) -> list[tuple[int, str, str, object]]:
    """``(step, tag, plugin, value)`` of every summary in the run's event files."""
    found = []
    for path in sorted(run.glob("*tfevents*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.append((event.step, value.tag, value.metadata.plugin_data.plugin_name,
                              tf.make_ndarray(value.tensor)))
    return found


def blow_up(callbacks: list) -> None:
    """A learning rate that makes the loss NaN within a few steps."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e9), "mse")
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    model.fit(x, x[:, :1], batch_size=8, epochs=3, verbose=0, callbacks=callbacks)


def check_findings_written(tw: KerasTripwire, run: Path) -> None:
    written = events(run)
    texts = [(step, tag, value.item().decode()) for step, tag, plugin, value in written if plugin == "text"]
    assert tw.findings and texts == [(f.step, f"tripwire/{f.rule}", summary_line(f)) for f in tw.findings]
    counts = [float(value) for _, tag, plugin, value in written if tag == "tripwire/findings"]
    assert counts and all(plugin == "scalars" for _, tag, plugin, _ in written if tag == "tripwire/findings")
    assert counts == sorted(counts) and counts[-1] == len(tw.findings)


def test_findings_go_to_a_log_dir_as_text_and_a_count(tmp_path):
    tw = KerasTripwire({"rules": {"nonfinite": {}}, "interval": 2}, log_dir=False, tensorboard=str(tmp_path / "tb"))
    blow_up([tw])
    assert tw.stopped_by.rule == "nonfinite"
    check_findings_written(tw, tmp_path / "tb" / "train")


def test_findings_join_the_run_of_the_tensorboard_callback_of_the_same_fit(tmp_path):
    pytest.importorskip("tensorboard")  # keras.callbacks.TensorBoard needs it to write its own summaries
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"), update_freq="batch")
    tw = KerasTripwire({"rules": {"nonfinite": {}}, "interval": 2}, log_dir=False, tensorboard=board)
    blow_up([board, tw])
    check_findings_written(tw, tmp_path / "logs" / "train")
    assert any(tag.startswith("batch_") for _, tag, _, _ in events(tmp_path / "logs" / "train"))  # Keras's own


def test_a_tensorboard_that_is_neither_a_callback_nor_a_path_is_refused():
    with pytest.raises(TypeError, match=r"tensorboard=\[\]; valid: a keras.callbacks.TensorBoard"):
        KerasTripwire(tensorboard=[])
