"""Keyword arguments of the Lightning callback override the config: ``log_dir=None`` writes no run
record (as ``log_dir: null`` in YAML), leaving it out takes the config's directory, and ``strict``
overrides the YAML's both ways."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning_kit import Task, blobs, loader, mlp, trainer
from tripwire import LightningTripwire

pytestmark = pytest.mark.torch

CONFIG = "log_dir: records\nrules: {nonfinite: {}}\n"


@pytest.mark.parametrize("kwargs, made", [({"log_dir": None}, []), ({}, ["records"])], ids=["None", "left out"])
def test_log_dir_none_writes_no_record_and_left_out_takes_the_configs(kwargs, made, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cb = LightningTripwire(CONFIG, **kwargs)
    trainer([cb], max_steps=2).fit(Task(mlp()), loader(*blobs(n=64)))
    assert sorted(p.name for p in tmp_path.iterdir()) == made
    assert (cb.monitor.record_path is not None) == bool(made)


@pytest.mark.parametrize("yaml, strict, expected", [("strict: true\n", False, False), ("strict: false\n", True, True),
                                                    ("strict: true\n", None, True)])
def test_strict_keyword_overrides_the_yaml(yaml, strict, expected):
    cb = LightningTripwire(yaml, strict=strict, log_dir=False)
    assert cb.monitor.engine.strict is expected and cb.monitor.guard.strict is expected
