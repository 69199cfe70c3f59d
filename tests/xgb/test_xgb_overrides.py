"""Keyword arguments of the XGBoost callback override the config: ``log_dir=None`` writes no run
record (as ``log_dir: null`` in YAML), leaving it out takes the config's directory, and ``strict``
overrides the YAML's both ways."""

import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import XGBoostTripwire

pytestmark = pytest.mark.xgboost

CONFIG = "log_dir: records\nrules: {tree_depth: {}}\n"


@pytest.mark.parametrize("kwargs, made", [({"log_dir": None}, []), ({}, ["records"])], ids=["None", "left out"])
def test_log_dir_none_writes_no_record_and_left_out_takes_the_configs(kwargs, made, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = data(n=200)
    cb = XGBoostTripwire(CONFIG, interval=2, **kwargs)
    xgb.train({"max_depth": 2}, xgb.DMatrix(X, y), 4, callbacks=[cb])
    assert sorted(p.name for p in tmp_path.iterdir()) == made
    assert (cb.record_path is not None) == bool(made)


def test_log_dir_none_survives_the_sklearn_copies(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = data(n=200)
    for kwargs in ({"log_dir": None}, {}):  # the sklearn API deep-copies its callbacks
        callback = XGBoostTripwire(CONFIG, interval=2, **kwargs)
        xgb.XGBClassifier(n_estimators=4, max_depth=2, callbacks=[callback]).fit(X, y)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records"]
    assert len(list((tmp_path / "records").iterdir())) == 1


@pytest.mark.parametrize("yaml, strict, expected", [("strict: true\n", False, False), ("strict: false\n", True, True),
                                                    ("strict: true\n", None, True)])
def test_strict_keyword_overrides_the_yaml(yaml, strict, expected):
    monitor = XGBoostTripwire(yaml, strict=strict, log_dir=False).monitor
    assert monitor.engine.strict is expected and monitor.guard.strict is expected
