"""Keyword arguments of the Keras callback override the config: ``log_dir=None`` writes no run
record (as ``log_dir: null`` in YAML), leaving it out takes the config's directory, and ``strict``
overrides the YAML's both ways."""

import keras
import pytest

from keras_kit import classification, mlp
from tripwire import KerasTripwire

pytestmark = pytest.mark.keras
pytest.importorskip("keras")

CONFIG = "log_dir: records\nrules: {nonfinite: {}}\n"


@pytest.mark.parametrize("kwargs, made", [({"log_dir": None}, []), ({}, ["records"])], ids=["None", "left out"])
def test_log_dir_none_writes_no_record_and_left_out_takes_the_configs(kwargs, made, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = mlp()
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    tw = KerasTripwire(CONFIG, interval=2, **kwargs)
    model.fit(*classification(n=128), batch_size=64, epochs=1, verbose=0, callbacks=[tw])
    assert sorted(p.name for p in tmp_path.iterdir()) == made
    assert (tw.monitor.record_path is not None) == bool(made)


@pytest.mark.parametrize("yaml, strict, expected", [("strict: true\n", False, False), ("strict: false\n", True, True),
                                                    ("strict: true\n", None, True)])
def test_strict_keyword_overrides_the_yaml(yaml, strict, expected):
    tw = KerasTripwire(yaml, strict=strict, log_dir=False)
    assert tw.monitor.engine.strict is expected and tw.monitor.guard.strict is expected
