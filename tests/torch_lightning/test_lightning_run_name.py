"""LightningTripwire takes the run metadata the other callbacks take (``run_name``), and says once
per run which configured rules it cannot feed."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire
from tripwire import ConfigError, LightningTripwire
from tripwire.record import Run


def test_run_name_names_the_run_record(tmp_path):
    cb = tripwire({"rules": {"nonfinite": {}}}, log_dir=tmp_path, run_name="lr-0.05")
    fit(Task(mlp()), loader(*blobs(n=128)), callback=cb, max_steps=4)

    assert cb.monitor.record_path == str(tmp_path / "lr-0.05" / "record.sqlite")
    with Run.latest(tmp_path) as run:
        assert run.meta["run_name"] == "lr-0.05" and run.meta["framework"] == "torch"


@pytest.mark.parametrize("run_name", ["runs/a", "..", "", 7])
def test_a_run_name_that_is_not_a_directory_name_is_refused(run_name):
    with pytest.raises(ConfigError) as info:
        LightningTripwire(log_dir=False, run_name=run_name)
    assert info.value.path == "run_name" and repr(run_name) in str(info.value)


def test_a_configured_rule_it_cannot_feed_is_reported_once(caplog):
    caplog.set_level(logging.INFO, logger="tripwire")
    cb = tripwire({"interval": 2, "rules": {"tree_depth": {}, "nonfinite": {}}})
    fit(Task(mlp()), loader(*blobs(n=128)), callback=cb, max_steps=8)

    reports = [(r.levelno, r.getMessage()) for r in caplog.records if "will not run" in r.getMessage()]
    assert reports == [(logging.WARNING, "tripwire: rule tree_depth needs tree_depth, which LightningTripwire "
                                         "does not collect; it will not run")]
    assert list(cb.monitor.engine.rules) == ["nonfinite"]
